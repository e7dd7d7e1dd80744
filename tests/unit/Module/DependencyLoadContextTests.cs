using System.Reflection;
using System.Runtime.Loader;
using EtPhoneHome.Loading;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Module;

public sealed class DependencyLoadContextTests
{
    // One private context for the class: like PowerShell, a process creates it once (it cannot be unloaded).
    private static readonly Lazy<DependencyLoadContext> Context = new(() => new DependencyLoadContext(BuiltModule.Deps));

    private static object? Invoke(object target, string method, params object?[] args) =>
        target.GetType().GetMethod(method, args.Select(a => a!.GetType()).ToArray())!.Invoke(target, args);

    private static object? Get(object target, string property) => target.GetType().GetProperty(property)!.GetValue(target);

    private static string QuerySqliteVersion(Assembly sqlite)
    {
        var connection = Activator.CreateInstance(sqlite.GetType("Microsoft.Data.Sqlite.SqliteConnection", throwOnError: true)!, "Data Source=:memory:")!;
        try
        {
            Invoke(connection, "Open");
            var command = Invoke(connection, "CreateCommand")!;
            command.GetType().GetProperty("CommandText")!.SetValue(command, "select sqlite_version()");
            return (string)Invoke(command, "ExecuteScalar")!;
        }
        finally
        {
            ((IDisposable)connection).Dispose();
        }
    }

    [Fact]
    public void SqliteThroughThePrivateContext_OpensAnInMemoryDatabase_WithTheNativeLibraryFromDeps()
    {
        var context = Context.Value;
        var sqlite = context.LoadFromAssemblyName(new AssemblyName("Microsoft.Data.Sqlite"));

        var version = QuerySqliteVersion(sqlite);

        Assert.Matches(@"^3\.\d+\.\d+", version);
        Assert.Same(context, AssemblyLoadContext.GetLoadContext(sqlite));
        Assert.StartsWith(BuiltModule.Deps, sqlite.Location, StringComparison.Ordinal);

        // The native library came from deps/runtimes/<this platform's rid>/native, through this context.
        var rid = DependencyLoadContext.CurrentRuntimeIdentifiers()[^1];
        var native = Assert.Single(context.NativeLibraries, p => Path.GetFileName(p).Contains("e_sqlite3", StringComparison.Ordinal));
        Assert.Equal(Path.Combine(BuiltModule.Deps, "runtimes", rid, "native"), Path.GetDirectoryName(native));
        if (OperatingSystem.IsLinux())
        {
            // The process really mapped that file (not only asked for it).
            Assert.Contains(native, File.ReadAllText("/proc/self/maps"), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AnAssemblyAlreadyInTheDefaultContext_DoesNotLeakIntoThePrivateOne()
    {
        // The test host loaded its own Microsoft.Data.Sqlite and EtPhoneHome.Core into the default context (as
        // another module would in a PowerShell session); the private context still uses its own copies.
        var defaultSqlite = typeof(Microsoft.Data.Sqlite.SqliteConnection).Assembly;
        var defaultCore = typeof(EtPhoneHome.Core.DataDirectory).Assembly;
        Assert.Same(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(defaultSqlite));

        var privateSqlite = Context.Value.LoadFromAssemblyName(defaultSqlite.GetName());
        var privateCore = Context.Value.LoadFromAssemblyName(defaultCore.GetName());

        Assert.NotSame(defaultSqlite, privateSqlite);
        Assert.NotSame(defaultCore, privateCore);
        Assert.NotEqual(typeof(EtPhoneHome.Core.DataDirectory), privateCore.GetType("EtPhoneHome.Core.DataDirectory"));
        // Core's own reference to SQLite resolves inside the private context, not to the default copy.
        var coreSqlite = privateCore.GetReferencedAssemblies().Single(a => a.Name == "Microsoft.Data.Sqlite");
        Assert.Same(privateSqlite, Context.Value.LoadFromAssemblyName(coreSqlite));
    }

    [Fact]
    public void FrameworkAssemblies_ComeFromTheDefaultContext()
    {
        var runtime = Context.Value.LoadFromAssemblyName(typeof(object).Assembly.GetName());
        Assert.Same(typeof(object).Assembly, runtime);
    }

    [Fact]
    public void TheResolver_AnswersOnlyTheModulesOwnAssemblies()
    {
        var context = Context.Value;
        Assert.True(DependencyResolver.ShouldResolve(context, new AssemblyName("EtPhoneHome.Core")));
        Assert.True(DependencyResolver.ShouldResolve(context, new AssemblyName("EtPhoneHome.Protocol")));
        // Another module's request for a shared dependency is never answered with ours.
        Assert.True(context.Contains(new AssemblyName("Microsoft.Data.Sqlite")));
        Assert.False(DependencyResolver.ShouldResolve(context, new AssemblyName("Microsoft.Data.Sqlite")));
        Assert.False(DependencyResolver.ShouldResolve(context, new AssemblyName("EtPhoneHome.Cmdlets")));
        Assert.False(DependencyResolver.ShouldResolve(context, new AssemblyName("EtPhoneHome.NotShipped")));
    }

    [Fact]
    public void Register_IgnoresAFlatBuildOutput_WithoutDeps()
    {
        var flat = Path.Combine(Path.GetTempPath(), "eph-flat-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(flat);
        try
        {
            Assert.False(DependencyResolver.Register(flat));
        }
        finally
        {
            System.IO.Directory.Delete(flat);
        }
    }

    [Fact]
    public void NativeCandidates_FollowThePlatformsNamingAndRid()
    {
        var candidates = DependencyLoadContext.NativeCandidates("/m/deps", "e_sqlite3").ToList();
        var rid = DependencyLoadContext.CurrentRuntimeIdentifiers()[^1];
        var expected = OperatingSystem.IsWindows() ? "e_sqlite3.dll" : OperatingSystem.IsMacOS() ? "libe_sqlite3.dylib" : "libe_sqlite3.so";
        Assert.Contains(Path.Combine("/m/deps", "runtimes", rid, "native", expected), candidates);
        Assert.All(candidates, c => Assert.StartsWith(Path.Combine("/m/deps", "runtimes"), c, StringComparison.Ordinal));
    }

    [Fact]
    public void TheLayoutRoot_HoldsOnlyTheCmdletsAssembly_EverythingElseIsInDeps()
    {
        var rootAssemblies = System.IO.Directory.GetFiles(BuiltModule.Directory, "*.dll").Select(Path.GetFileName);
        Assert.Equal(["EtPhoneHome.Cmdlets.dll"], rootAssemblies);
        foreach (var name in new[] { "EtPhoneHome.Core.dll", "EtPhoneHome.Protocol.dll", "Microsoft.Data.Sqlite.dll", "SQLitePCLRaw.core.dll" })
        {
            Assert.True(File.Exists(Path.Combine(BuiltModule.Deps, name)), $"deps/{name} missing");
        }
    }

    [Fact]
    public void BuiltCmdletsAssembly_LoadsAndReflects_WhereDepsIsInvisible()
    {
        // What PowerShell does before the module's OnImport hooks the private context: load the cmdlets assembly in
        // a context that sees only the framework and System.Management.Automation, enumerate its exported types and
        // read each one as cmdlet discovery and parameter binding do. A Core or third-party type in any type's
        // layout (a value-type field counts), base type, interface, attribute or bound property fails here, as
        // `Import-Module` failed in pwsh with "Could not load file or assembly 'EtPhoneHome.Core'".
        var context = new IsolatedCmdletsContext();
        var assembly = context.LoadFromAssemblyPath(BuiltModule.CmdletsAssembly);
        var problems = new List<string>();

        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (Exception ex)
        {
            types = [];
            problems.Add($"GetExportedTypes: {ex.GetBaseException().Message}");
        }

        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in types)
        {
            Try(problems, type.FullName!, () =>
            {
                for (var t = type.BaseType; t is not null; t = t.BaseType)
                {
                    _ = t.FullName;
                }

                _ = type.GetInterfaces();
                _ = type.GetCustomAttributes(inherit: true);
            });
            // Fields PowerShell can bind (public) are read; private ones need only their layout, which a reference type
            // does not take part in, so those are checked from metadata below without loading anything.
            foreach (var field in type.GetFields(All).Where(f => f.IsPublic || f.IsFamily))
            {
                Try(problems, $"{type.FullName}.{field.Name}", () => _ = field.FieldType.FullName);
            }

            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
            {
                Try(problems, $"{type.FullName}.{property.Name}", () =>
                {
                    _ = property.PropertyType.FullName;
                    _ = property.GetCustomAttributes(inherit: true);
                });
            }
        }

        problems.AddRange(ForeignValueTypeFields(BuiltModule.CmdletsAssembly));

        // The assembly itself may only reference the framework, PowerShell and the module's own assemblies; anything
        // else (Microsoft.Extensions.*, AWS, SQLite) lives in deps/ and is never resolved for the default context.
        foreach (var reference in assembly.GetReferencedAssemblies())
        {
            if (!IsolatedCmdletsContext.IsFramework(reference) && reference.Name != "System.Management.Automation"
                && reference.Name?.StartsWith("EtPhoneHome.", StringComparison.Ordinal) != true)
            {
                problems.Add($"references {reference.Name}: only the framework, System.Management.Automation and EtPhoneHome.* may be referenced");
            }
        }

        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
        Assert.Contains(types, t => t.Name == "InvokeEphCommandCommand");
        // The context was asked for the module's own dependencies only when a type needed one: none did.
        Assert.Empty(context.Refused);
    }

    /// <summary>
    /// Instance fields whose type is (or wraps, as Nullable&lt;T&gt; does) a value type from another assembly than the
    /// framework's: loading the declaring type computes its layout, which loads that assembly. Read from metadata.
    /// </summary>
    private static IEnumerable<string> ForeignValueTypeFields(string assemblyPath)
    {
        using var pe = new System.Reflection.PortableExecutable.PEReader(File.OpenRead(assemblyPath));
        var md = System.Reflection.Metadata.PEReaderExtensions.GetMetadataReader(pe);
        var provider = new FieldTypeProvider(md);
        var found = new List<string>();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(typeHandle);
            foreach (var fieldHandle in type.GetFields())
            {
                var field = md.GetFieldDefinition(fieldHandle);
                if ((field.Attributes & FieldAttributes.Static) != 0)
                {
                    continue;
                }

                var shape = field.DecodeSignature(provider, genericContext: null);
                if (shape.ForeignValueType is { } foreign)
                {
                    found.Add($"{md.GetString(type.Name)}.{md.GetString(field.Name)}: value type {foreign} from a dependency is part of the layout");
                }
            }
        }

        return found;
    }

    private sealed record FieldShape(bool IsValueType, string? ForeignValueType);

    private sealed class FieldTypeProvider(System.Reflection.Metadata.MetadataReader md)
        : System.Reflection.Metadata.ISignatureTypeProvider<FieldShape, object?>
    {
        private static readonly FieldShape Plain = new(false, null);

        public FieldShape GetTypeFromReference(System.Reflection.Metadata.MetadataReader reader, System.Reflection.Metadata.TypeReferenceHandle handle, byte rawTypeKind)
        {
            var reference = reader.GetTypeReference(handle);
            var scope = reference.ResolutionScope;
            while (scope.Kind == System.Reflection.Metadata.HandleKind.TypeReference)
            {
                scope = reader.GetTypeReference((System.Reflection.Metadata.TypeReferenceHandle)scope).ResolutionScope;
            }

            var valueType = rawTypeKind == 0x11;
            if (!valueType || scope.Kind != System.Reflection.Metadata.HandleKind.AssemblyReference)
            {
                return new(valueType, null);
            }

            var assembly = reader.GetString(reader.GetAssemblyReference((System.Reflection.Metadata.AssemblyReferenceHandle)scope).Name);
            return IsolatedCmdletsContext.IsFramework(new AssemblyName(assembly)) || assembly == "System.Management.Automation"
                ? new(true, null)
                : new(true, $"{reader.GetString(reference.Namespace)}.{reader.GetString(reference.Name)} ({assembly})");
        }

        public FieldShape GetGenericInstantiation(FieldShape genericType, System.Collections.Immutable.ImmutableArray<FieldShape> typeArguments) =>
            // A generic value type (Nullable<T>, ValueTuple<...>) lays its value-type arguments out inline.
            genericType.IsValueType
                ? new(true, genericType.ForeignValueType ?? typeArguments.Select(a => a.IsValueType ? a.ForeignValueType : null).FirstOrDefault(f => f is not null))
                : Plain;

        public FieldShape GetTypeFromDefinition(System.Reflection.Metadata.MetadataReader reader, System.Reflection.Metadata.TypeDefinitionHandle handle, byte rawTypeKind) => new(rawTypeKind == 0x11, null);

        public FieldShape GetPrimitiveType(System.Reflection.Metadata.PrimitiveTypeCode typeCode) => new(typeCode is not (System.Reflection.Metadata.PrimitiveTypeCode.String or System.Reflection.Metadata.PrimitiveTypeCode.Object), null);

        public FieldShape GetSZArrayType(FieldShape elementType) => Plain;

        public FieldShape GetArrayType(FieldShape elementType, System.Reflection.Metadata.ArrayShape shape) => Plain;

        public FieldShape GetByReferenceType(FieldShape elementType) => Plain;

        public FieldShape GetPointerType(FieldShape elementType) => new(true, null);

        public FieldShape GetFunctionPointerType(System.Reflection.Metadata.MethodSignature<FieldShape> signature) => new(true, null);

        public FieldShape GetGenericMethodParameter(object? genericContext, int index) => Plain;

        public FieldShape GetGenericTypeParameter(object? genericContext, int index) => Plain;

        public FieldShape GetModifiedType(FieldShape modifier, FieldShape unmodifiedType, bool isRequired) => unmodifiedType;

        public FieldShape GetPinnedType(FieldShape elementType) => elementType;

        public FieldShape GetTypeFromSpecification(System.Reflection.Metadata.MetadataReader reader, object? genericContext, System.Reflection.Metadata.TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, genericContext);

        public override string ToString() => md.ToString()!;
    }

    private static void Try(List<string> problems, string what, Action read)
    {
        try
        {
            read();
        }
        catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or TypeLoadException or ReflectionTypeLoadException or TypeInitializationException)
        {
            problems.Add($"{what}: {ex.GetBaseException().Message}");
        }
    }

    /// <summary>
    /// A load context like PowerShell's default one before OnImport: the framework and System.Management.Automation
    /// resolve, nothing else does (the test host has Core loaded in its own default context; this one must not see it).
    /// </summary>
    private sealed class IsolatedCmdletsContext() : AssemblyLoadContext("EphGuard", isCollectible: true)
    {
        private static readonly string FrameworkDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;

        public List<string> Refused { get; } = [];

        public static bool IsFramework(AssemblyName name) =>
            name.Name is { } n && (n is "netstandard" or "mscorlib" || File.Exists(Path.Combine(FrameworkDirectory, n + ".dll")));

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            if (IsFramework(assemblyName) || assemblyName.Name == "System.Management.Automation")
            {
                return null;
            }

            lock (Refused)
            {
                Refused.Add(assemblyName.Name!);
            }

            throw new FileNotFoundException($"Could not load file or assembly '{assemblyName.FullName}' (deps/ is not visible before OnImport).");
        }
    }
}
