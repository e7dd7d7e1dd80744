using System.Management.Automation;
using System.Reflection;
using System.Text.RegularExpressions;
using EtPhoneHome;
using EtPhoneHome.Core.Operations;
using Xunit;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

public sealed class CmdletMetadataTests
{
    private static readonly Assembly CmdletAssembly = typeof(GetEphClientCommand).Assembly;

    private static readonly string RepoRoot = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EtPhoneHome.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    // PowerShellStandard.Library is a compile-time surface whose attribute bodies do nothing at run time, so
    // the tests read attributes as metadata (CustomAttributeData) — exactly what PowerShell's binder will see.
    internal sealed record AttributeView(IReadOnlyList<object?> Args, IReadOnlyDictionary<string, object?> Named)
    {
        public T Get<T>(string name, T fallback) => Named.TryGetValue(name, out var v) && v is not null ? (T)v : fallback;
    }

    private static object? Unwrap(CustomAttributeTypedArgument a) =>
        a.Value is IReadOnlyCollection<CustomAttributeTypedArgument> items ? items.Select(Unwrap).ToArray() : a.Value;

    private static AttributeView[] Attributes<T>(MemberInfo member) => member.GetCustomAttributesData()
        .Where(d => d.AttributeType == typeof(T))
        .Select(d => new AttributeView(
            d.ConstructorArguments.Select(Unwrap).ToList(),
            d.NamedArguments.ToDictionary(n => n.MemberName, n => Unwrap(n.TypedValue))))
        .ToArray();

    private static AttributeView Attribute<T>(MemberInfo member) => Assert.Single(Attributes<T>(member));

    internal sealed record CmdletView(string VerbName, string NounName, AttributeView View);

    private static IEnumerable<(Type Type, CmdletView Attribute)> Cmdlets() =>
        CmdletAssembly.GetTypes()
            .Select(t => (Type: t, Views: Attributes<CmdletAttribute>(t)))
            .Where(x => x.Views.Length == 1)
            .Select(x => (x.Type, new CmdletView((string)x.Views[0].Args[0]!, (string)x.Views[0].Args[1]!, x.Views[0])));

    private static string CommandName(CmdletView a) => $"{a.VerbName}-{a.NounName}";

    private static AttributeView[] ParameterAttributes(Type type, string name) =>
        Attributes<ParameterAttribute>(type.GetProperty(name)!);

    private static Type[] OutputTypes(Type type) =>
        Attributes<OutputTypeAttribute>(type).SelectMany(a => ((object?[])a.Args[0]!).Cast<Type>()).ToArray();

    private static object?[] Aliases(Type type, string property) =>
        (object?[])Attribute<AliasAttribute>(type.GetProperty(property)!).Args[0]!;

    // The approved verbs this module may use (Get-Verb); a cmdlet with another verb fails.
    private static readonly HashSet<string> ApprovedVerbs = typeof(VerbsCommon).Assembly.GetTypes()
        .Where(t => t.Name.StartsWith("Verbs", StringComparison.Ordinal) && t.IsAbstract && t.IsSealed)
        .SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.Static))
        .Select(f => (string)f.GetValue(null)!)
        .ToHashSet(StringComparer.Ordinal);

    [Fact]
    public void EveryCmdlet_UsesAnApprovedVerb_AndTheEphNounPrefix()
    {
        Assert.NotEmpty(Cmdlets());
        Assert.Contains("Invoke", ApprovedVerbs);
        foreach (var (type, attribute) in Cmdlets())
        {
            Assert.Contains(attribute.VerbName, ApprovedVerbs);
            Assert.StartsWith("Eph", attribute.NounName, StringComparison.Ordinal);
            Assert.True(type.IsSealed && type.IsPublic, $"{type.Name} must be public sealed");
            Assert.True(typeof(EphCmdlet).IsAssignableFrom(type), $"{type.Name} must derive from EphCmdlet");
            // A server cmdlet writes nothing: on stdio, PowerShell's stdout is the MCP protocol.
            if (type != typeof(StartEphMcpServerCommand))
            {
                Assert.NotEmpty(OutputTypes(type));
            }
        }
    }

    [Fact]
    public void GetEphClient_Metadata()
    {
        var type = typeof(GetEphClientCommand);
        var cmdlet = Attribute<CmdletAttribute>(type);
        Assert.Equal(["Get", "EphClient"], cmdlet.Args);
        Assert.Equal("Name", cmdlet.Get<string?>("DefaultParameterSetName", null));
        Assert.Equal([typeof(EphClient)], OutputTypes(type));

        var name = Assert.Single(ParameterAttributes(type, "Name"));
        Assert.Equal(("Name", 0, true, false), (name.Get<string?>("ParameterSetName", null), name.Get("Position", -1), name.Get("ValueFromPipeline", false), name.Get("Mandatory", false)));
        Assert.Single(Attributes<SupportsWildcardsAttribute>(type.GetProperty("Name")!));
        Assert.Equal(typeof(string[]), type.GetProperty("Name")!.PropertyType);
        Assert.Equal(typeof(ClientNameCompleter), Attribute<ArgumentCompleterAttribute>(type.GetProperty("Name")!).Args[0]);

        var id = Assert.Single(ParameterAttributes(type, "Id"));
        Assert.Equal(("Id", true), (id.Get<string?>("ParameterSetName", null), id.Get("ValueFromPipelineByPropertyName", false)));
        Assert.Contains("Uuid", Aliases(type, "Id"));

        Assert.Equal(typeof(SwitchParameter), type.GetProperty("Online")!.PropertyType);
        Assert.Single(ParameterAttributes(type, "Online"));
    }

    [Fact]
    public void InvokeEphCommand_Metadata()
    {
        var type = typeof(InvokeEphCommandCommand);
        var cmdlet = Attribute<CmdletAttribute>(type);
        Assert.Equal(["Invoke", "EphCommand"], cmdlet.Args);
        Assert.Equal("ClientId", cmdlet.Get<string?>("DefaultParameterSetName", null));
        Assert.True(cmdlet.Get("SupportsShouldProcess", false));
        Assert.Equal((int)ConfirmImpact.Medium, cmdlet.Get("ConfirmImpact", -1));
        Assert.Equal([typeof(EphCommandResult)], OutputTypes(type));

        var command = Assert.Single(ParameterAttributes(type, "Command"));
        Assert.Equal((0, true, null), (command.Get("Position", -1), command.Get("Mandatory", false), command.Get<string?>("ParameterSetName", null)));

        var clientId = Assert.Single(ParameterAttributes(type, "ClientId"));
        Assert.Equal(("ClientId", true, false, true), (clientId.Get<string?>("ParameterSetName", null), clientId.Get("ValueFromPipelineByPropertyName", false), clientId.Get("ValueFromPipeline", false), clientId.Get("Mandatory", false)));
        Assert.Equal(["Uuid", "Id"], Aliases(type, "ClientId"));

        var input = Assert.Single(ParameterAttributes(type, "InputObject"));
        Assert.Equal(("InputObject", true, true), (input.Get<string?>("ParameterSetName", null), input.Get("ValueFromPipeline", false), input.Get("Mandatory", false)));
        Assert.Equal(typeof(EphClient[]), type.GetProperty("InputObject")!.PropertyType);

        Assert.Equal([1, 1024], Attribute<ValidateRangeAttribute>(type.GetProperty("ThrottleLimit")!).Args);
        Assert.Equal([1, 3600], Attribute<ValidateRangeAttribute>(type.GetProperty("TimeoutSec")!).Args);

        var instance = new InvokeEphCommandCommand();
        Assert.Equal(32, instance.ThrottleLimit);
        Assert.Equal(300, instance.TimeoutSec);
    }

    [Fact]
    public void StartEphMcpServer_Metadata()
    {
        var type = typeof(StartEphMcpServerCommand);
        var cmdlet = Attribute<CmdletAttribute>(type);
        Assert.Equal(["Start", "EphMcpServer"], cmdlet.Args);
        Assert.Empty(OutputTypes(type));
        Assert.Equal([1024, 1048576], Attribute<ValidateRangeAttribute>(type.GetProperty("MaxOutputBytes")!).Args);
        Assert.Equal(typeof(string[]), type.GetProperty("AllowLocalDirectory")!.PropertyType);
        Assert.Single(ParameterAttributes(type, "AllowLocalDirectory"));
        Assert.Equal(16384, new StartEphMcpServerCommand().MaxOutputBytes);
    }

    [Fact]
    public void OutputTypes_AreImmutable_AndCarryWhatTheFormatShows()
    {
        foreach (var type in new[] { typeof(EphClient), typeof(EphCommandResult) })
        {
            Assert.True(type.IsSealed);
            Assert.All(type.GetProperties(), p => Assert.Null(p.SetMethod));
            Assert.DoesNotContain(type.GetProperties(), p => p.Name.Contains("Secret", StringComparison.OrdinalIgnoreCase));
        }

        foreach (var name in new[] { "Uuid", "Id", "Name", "DisplayName", "Online", "Tags", "Purpose", "Hostname", "Platform", "Username", "Capabilities", "LastSeen", "FirstSeen", "TunnelPort", "KeyFingerprint", "KeyMismatch", "AgentVersion" })
        {
            Assert.NotNull(typeof(EphClient).GetProperty(name));
        }

        foreach (var name in new[] { "ClientId", "PSComputerName", "Status", "ExitCode", "Stdout", "Stderr", "Duration", "Truncated", "Error" })
        {
            Assert.NotNull(typeof(EphCommandResult).GetProperty(name));
        }

        Assert.Equal(typeof(TimeSpan), typeof(EphCommandResult).GetProperty("Duration")!.PropertyType);
    }

    [Fact]
    public void StatusEnum_MirrorsCore()
    {
        Assert.Equal(Enum.GetNames<CommandStatus>(), Enum.GetNames<EphCommandStatus>());
        Assert.All(Enum.GetValues<CommandStatus>(), s => Assert.Equal(s.ToString(), ((EphCommandStatus)(int)s).ToString()));
    }

    [Fact]
    public void Manifest_CmdletsToExport_EqualsTheCmdletClasses()
    {
        var manifest = File.ReadAllText(Path.Combine(RepoRoot, "module", "EtPhoneHome.psd1"));
        var match = Regex.Match(manifest, @"CmdletsToExport\s*=\s*@\(([^)]*)\)");
        Assert.True(match.Success, "CmdletsToExport not found");
        var exported = Regex.Matches(match.Groups[1].Value, "'([^']+)'").Select(m => m.Groups[1].Value).Order().ToArray();

        Assert.DoesNotContain(exported, e => e.Contains('*'));
        Assert.Equal(Cmdlets().Select(c => CommandName(c.Attribute)).Order().ToArray(), exported);
        Assert.Matches(@"ModuleVersion\s*=\s*'0\.1\.0'", manifest);
        Assert.Matches(@"RootModule\s*=\s*'EtPhoneHome\.Cmdlets\.dll'", manifest);
    }

    [Fact]
    public void FormatFile_HasViewsForTheOutputTypes()
    {
        var xml = System.Xml.Linq.XDocument.Load(Path.Combine(RepoRoot, "module", "EtPhoneHome.format.ps1xml"));
        var viewed = xml.Descendants("TypeName").Select(e => e.Value).ToHashSet();
        Assert.Contains(typeof(EphClient).FullName!, viewed);
        Assert.Contains(typeof(EphCommandResult).FullName!, viewed);
    }

    [Fact]
    public void EveryCmdlet_HasAHelpPage_MentioningEveryParameter()
    {
        foreach (var (type, attribute) in Cmdlets())
        {
            var path = Path.Combine(RepoRoot, "docs", "help", CommandName(attribute) + ".md");
            Assert.True(File.Exists(path), $"missing {path}");
            var help = File.ReadAllText(path);
            Assert.Contains("## SYNOPSIS", help);
            Assert.Contains("## EXAMPLES", help);
            foreach (var property in type.GetProperties().Where(p => Attributes<ParameterAttribute>(p).Length > 0))
            {
                Assert.True(help.Contains($"### -{property.Name}", StringComparison.Ordinal), $"{CommandName(attribute)} help lacks -{property.Name}");
            }

            if (attribute.View.Get("SupportsShouldProcess", false))
            {
                Assert.Contains("### -WhatIf", help);
                Assert.Contains("### -Confirm", help);
            }
        }
    }

    [Fact]
    public void ErrorIds_AreStable()
    {
        Assert.Equal("ClientNotFound", Strings.ClientNotFoundId);
    }
}
