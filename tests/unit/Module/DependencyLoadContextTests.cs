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
    public void CmdletsAssembly_ExposesNoDependencyTypeToPowerShell()
    {
        // PowerShell reflects over the cmdlets assembly in the default context: a Core/Protocol type in a public
        // signature, or as any type's base or interface, would have to load there before the resolver is hooked.
        var assembly = typeof(GetEphClientCommand).Assembly;
        var foreign = new[] { "EtPhoneHome.Core", "EtPhoneHome.Protocol", "Microsoft.Data.Sqlite" };
        bool IsForeign(Type t) => t.HasElementType ? IsForeign(t.GetElementType()!)
            : foreign.Contains(t.Assembly.GetName().Name) || (t.IsGenericType && t.GetGenericArguments().Any(IsForeign));

        var problems = new List<string>();
        foreach (var type in assembly.GetTypes())
        {
            if (type.BaseType is { } b && IsForeign(b) || type.GetInterfaces().Any(IsForeign))
            {
                problems.Add($"{type}: base type or interface from a dependency");
            }

            if (!type.IsPublic && !type.IsNestedPublic)
            {
                continue;
            }

            const BindingFlags Visible = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var member in type.GetMembers(Visible))
            {
                var exposed = member switch
                {
                    MethodBase m when m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly => m.GetParameters().Select(p => p.ParameterType)
                        .Concat(m is MethodInfo mi ? [mi.ReturnType] : []),
                    PropertyInfo p when (p.GetMethod ?? p.SetMethod) is { } acc && (acc.IsPublic || acc.IsFamily) => [p.PropertyType],
                    FieldInfo f when f.IsPublic || f.IsFamily => [f.FieldType],
                    _ => [],
                };
                problems.AddRange(exposed.Where(IsForeign).Select(t => $"{type.Name}.{member.Name}: {t}"));
            }
        }

        Assert.Empty(problems);
    }
}
