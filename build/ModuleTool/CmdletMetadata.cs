using System.Reflection;
using System.Runtime.InteropServices;

namespace EtPhoneHome.ModuleTool;

/// <summary>One parameter's binding in one parameter set, as its [Parameter] attribute declares it.</summary>
internal sealed record ParameterBinding(string SetName, bool Mandatory, int? Position, bool ByValue, bool ByPropertyName);

/// <summary>A cmdlet parameter as PowerShell's binder sees it.</summary>
internal sealed record ParameterMetadata(string Name, string TypeName, string TypeFullName, bool IsSwitch, IReadOnlyList<string> Aliases,
    bool Globbing, IReadOnlyList<ParameterBinding> Bindings)
{
    /// <summary>The set name PowerShell uses for a parameter that belongs to every set.</summary>
    public const string AllSets = "__AllParameterSets";

    public bool InSet(string set) => Bindings.Any(b => b.SetName == AllSets || b.SetName == set);

    public ParameterBinding BindingFor(string set) =>
        Bindings.FirstOrDefault(b => b.SetName == set) ?? Bindings.First(b => b.SetName == AllSets);
}

/// <summary>A cmdlet class's metadata.</summary>
internal sealed record CommandMetadata(string Verb, string Noun, string? DefaultSet, bool SupportsShouldProcess,
    IReadOnlyList<ParameterMetadata> Parameters, IReadOnlyList<string> OutputTypes, bool SupportsPaging = false)
{
    /// <summary>The parameters PowerShell adds to a cmdlet with SupportsPaging, with their types.</summary>
    public static readonly IReadOnlyList<(string Name, string TypeName, string FullTypeName)> PagingParameters =
    [
        ("First", "UInt64", "System.UInt64"),
        ("Skip", "UInt64", "System.UInt64"),
        ("IncludeTotalCount", "SwitchParameter", "System.Management.Automation.SwitchParameter"),
    ];

    public string Name => $"{Verb}-{Noun}";

    /// <summary>Named parameter sets, the default first; one unnamed set when the cmdlet declares none.</summary>
    public IReadOnlyList<string> ParameterSets()
    {
        var sets = Parameters.SelectMany(p => p.Bindings).Select(b => b.SetName).Where(s => s != ParameterMetadata.AllSets)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (sets.Count == 0)
        {
            return [ParameterMetadata.AllSets];
        }

        if (DefaultSet is not null && sets.Remove(DefaultSet))
        {
            sets.Insert(0, DefaultSet);
        }

        return sets;
    }
}

/// <summary>
/// Reads the cmdlets of a compiled assembly without running it (MetadataLoadContext + CustomAttributeData):
/// exactly the attributes PowerShell's binder will read, whatever runtime the tool itself runs on.
/// </summary>
internal static class CmdletMetadataReader
{
    public static IReadOnlyList<CommandMetadata> Read(string assemblyPath)
    {
        var full = Path.GetFullPath(assemblyPath);
        var paths = new List<string>();
        paths.AddRange(Directory.GetFiles(RuntimeEnvironment.GetRuntimeDirectory(), "*.dll"));
        paths.AddRange(Directory.GetFiles(Path.GetDirectoryName(full)!, "*.dll"));
        paths.Add(typeof(System.Management.Automation.Cmdlet).Assembly.Location);
        var byName = paths.GroupBy(p => Path.GetFileName(p), StringComparer.OrdinalIgnoreCase).Select(g => g.Last());
        using var context = new MetadataLoadContext(new PathAssemblyResolver(byName));
        var assembly = context.LoadFromAssemblyPath(full);
        return [.. Types(assembly).Select(Describe).OfType<CommandMetadata>().OrderBy(c => c.Name, StringComparer.Ordinal)];
    }

    private static IEnumerable<Type> Types(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException ex)
        {
            return ex.Types.OfType<Type>();
        }
    }

    private static CustomAttributeData? Single(IEnumerable<CustomAttributeData> data, string fullName) =>
        data.SingleOrDefault(d => d.AttributeType.FullName == fullName);

    private static T Named<T>(CustomAttributeData data, string name, T fallback)
    {
        foreach (var arg in data.NamedArguments)
        {
            if (arg.MemberName == name && arg.TypedValue.Value is not null)
            {
                return (T)arg.TypedValue.Value;
            }
        }

        return fallback;
    }

    private static CommandMetadata? Describe(Type type)
    {
        var cmdlet = Single(type.GetCustomAttributesData(), "System.Management.Automation.CmdletAttribute");
        if (cmdlet is null || !type.IsPublic)
        {
            return null;
        }

        var parameters = new List<ParameterMetadata>();
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var attributes = property.GetCustomAttributesData();
            var bindings = attributes.Where(a => a.AttributeType.FullName == "System.Management.Automation.ParameterAttribute")
                .Select(a => new ParameterBinding(
                    Named(a, "ParameterSetName", ParameterMetadata.AllSets),
                    Named(a, "Mandatory", false),
                    Named(a, "Position", int.MinValue) is var p && p == int.MinValue ? null : p,
                    Named(a, "ValueFromPipeline", false),
                    Named(a, "ValueFromPipelineByPropertyName", false)))
                .ToList();
            if (bindings.Count == 0)
            {
                continue;
            }

            var aliases = attributes.Where(a => a.AttributeType.FullName == "System.Management.Automation.AliasAttribute")
                .SelectMany(a => a.ConstructorArguments)
                .SelectMany(arg => arg.Value is IEnumerable<CustomAttributeTypedArgument> items ? items.Select(i => (string)i.Value!) : [(string)arg.Value!])
                .ToList();
            var globbing = attributes.Any(a => a.AttributeType.FullName == "System.Management.Automation.SupportsWildcardsAttribute");
            parameters.Add(new ParameterMetadata(property.Name, FriendlyName(property.PropertyType), FullName(property.PropertyType),
                property.PropertyType.FullName == "System.Management.Automation.SwitchParameter", aliases, globbing, bindings));
        }

        var outputs = type.GetCustomAttributesData()
            .Where(a => a.AttributeType.FullName == "System.Management.Automation.OutputTypeAttribute")
            .SelectMany(a => a.ConstructorArguments)
            .SelectMany(arg => arg.Value is IEnumerable<CustomAttributeTypedArgument> items ? items.Select(i => i.Value) : [arg.Value])
            .Select(v => v is Type t ? t.FullName! : (string)v!)
            .ToList();

        return new CommandMetadata((string)cmdlet.ConstructorArguments[0].Value!, (string)cmdlet.ConstructorArguments[1].Value!,
            Named<string?>(cmdlet, "DefaultParameterSetName", null), Named(cmdlet, "SupportsShouldProcess", false), parameters, outputs,
            Named(cmdlet, "SupportsPaging", false));
    }

    /// <summary>The short type name platyPS and Get-Help show: String[], Int32, SwitchParameter, EphClient[].</summary>
    public static string FriendlyName(Type type)
    {
        if (type.IsArray)
        {
            return FriendlyName(type.GetElementType()!) + "[]";
        }

        if (type.IsGenericType)
        {
            var args = type.GetGenericArguments();
            if (type.GetGenericTypeDefinition().FullName == "System.Nullable`1")
            {
                return FriendlyName(args[0]);
            }

            return type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)] + "[" + string.Join(", ", args.Select(FriendlyName)) + "]";
        }

        return type.Name;
    }

    private static string FullName(Type type)
    {
        if (type.IsArray)
        {
            return FullName(type.GetElementType()!) + "[]";
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition().FullName == "System.Nullable`1")
        {
            return FullName(type.GetGenericArguments()[0]);
        }

        return type.FullName ?? type.Name;
    }
}
