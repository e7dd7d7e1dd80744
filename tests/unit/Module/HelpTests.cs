using System.Reflection;
using System.Runtime.InteropServices;
using System.Xml.Linq;
using EtPhoneHome.ModuleTool;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Module;

/// <summary>The generated MAML against the real metadata of the built cmdlets assembly, read as metadata only.</summary>
public sealed class HelpTests
{
    private static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
    private static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
    private static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";

    private sealed record Binding(string Set, bool Mandatory, int? Position, bool ByValue, bool ByPropertyName);

    private sealed record Parameter(string Name, IReadOnlyList<Binding> Bindings);

    private sealed record Cmdlet(string Name, string? DefaultSet, bool ShouldProcess, IReadOnlyList<Parameter> Parameters, bool Paging = false)
    {
        /// <summary>WhatIf/Confirm for ShouldProcess, First/Skip/IncludeTotalCount for SupportsPaging: PowerShell adds them.</summary>
        public IEnumerable<string> AddedParameters => (ShouldProcess ? new[] { "WhatIf", "Confirm" } : []).Concat(Paging ? ["First", "Skip", "IncludeTotalCount"] : []);
    }

    // Read independently of the generator: CustomAttributeData through a MetadataLoadContext on out/EtPhoneHome.
    private static readonly Lazy<IReadOnlyList<Cmdlet>> Cmdlets = new(() =>
    {
        var paths = Directory.GetFiles(RuntimeEnvironment.GetRuntimeDirectory(), "*.dll")
            .Concat(Directory.GetFiles(BuiltModule.Deps, "*.dll"))
            .Append(typeof(System.Management.Automation.Cmdlet).Assembly.Location)
            .Append(BuiltModule.CmdletsAssembly);
        using var context = new MetadataLoadContext(new PathAssemblyResolver(paths));
        var assembly = context.LoadFromAssemblyPath(BuiltModule.CmdletsAssembly);
        var result = new List<Cmdlet>();
        foreach (var type in assembly.GetTypes())
        {
            var cmdlet = type.GetCustomAttributesData().SingleOrDefault(a => a.AttributeType.Name == "CmdletAttribute");
            if (cmdlet is null)
            {
                continue;
            }

            T Named<T>(CustomAttributeData a, string name, T fallback) =>
                a.NamedArguments.Where(n => n.MemberName == name).Select(n => (T)n.TypedValue.Value!).DefaultIfEmpty(fallback).First();

            var parameters = type.GetProperties()
                .Select(p => new Parameter(p.Name, p.GetCustomAttributesData()
                    .Where(a => a.AttributeType.Name == "ParameterAttribute")
                    .Select(a => new Binding(Named(a, "ParameterSetName", "__AllParameterSets"), Named(a, "Mandatory", false),
                        Named(a, "Position", int.MinValue) is var pos && pos == int.MinValue ? null : pos,
                        Named(a, "ValueFromPipeline", false), Named(a, "ValueFromPipelineByPropertyName", false)))
                    .ToList()))
                .Where(p => p.Bindings.Count > 0)
                .ToList();
            result.Add(new Cmdlet($"{cmdlet.ConstructorArguments[0].Value}-{cmdlet.ConstructorArguments[1].Value}",
                Named<string?>(cmdlet, "DefaultParameterSetName", null), Named(cmdlet, "SupportsShouldProcess", false),
                parameters, Named(cmdlet, "SupportsPaging", false)));
        }

        return result;
    });

    // Type names are captured while the MetadataLoadContext is alive.
    private static readonly Lazy<Dictionary<(string, string), string>> TypeNames = new(() =>
    {
        var paths = Directory.GetFiles(RuntimeEnvironment.GetRuntimeDirectory(), "*.dll")
            .Concat(Directory.GetFiles(BuiltModule.Deps, "*.dll"))
            .Append(typeof(System.Management.Automation.Cmdlet).Assembly.Location)
            .Append(BuiltModule.CmdletsAssembly);
        using var context = new MetadataLoadContext(new PathAssemblyResolver(paths));
        var assembly = context.LoadFromAssemblyPath(BuiltModule.CmdletsAssembly);
        var names = new Dictionary<(string, string), string>();
        foreach (var type in assembly.GetTypes())
        {
            var cmdlet = type.GetCustomAttributesData().SingleOrDefault(a => a.AttributeType.Name == "CmdletAttribute");
            if (cmdlet is null)
            {
                continue;
            }

            var name = $"{cmdlet.ConstructorArguments[0].Value}-{cmdlet.ConstructorArguments[1].Value}";
            foreach (var p in type.GetProperties().Where(p => p.GetCustomAttributesData().Any(a => a.AttributeType.Name == "ParameterAttribute")))
            {
                var t = p.PropertyType;
                var full = t.IsArray ? t.GetElementType()!.FullName + "[]" : t.IsGenericType && t.GetGenericTypeDefinition().FullName == "System.Nullable`1" ? t.GetGenericArguments()[0].FullName! : t.FullName!;
                names[(name, p.Name)] = full;
            }
        }

        return names;
    });

    private static readonly Lazy<XDocument> Help = new(() =>
        XDocument.Load(Path.Combine(BuiltModule.Directory, "en-US", "EtPhoneHome.Cmdlets.dll-Help.xml")));

    private static XElement CommandHelp(string name) =>
        Help.Value.Root!.Elements(Command + "command").Single(c => c.Element(Command + "details")!.Element(Command + "name")!.Value == name);

    [Fact]
    public void EveryCmdlet_HasACommandEntry_WithSynopsisDescriptionAndTwoExamples()
    {
        var documented = Help.Value.Root!.Elements(Command + "command").Select(c => c.Element(Command + "details")!.Element(Command + "name")!.Value).Order().ToList();
        var cmdlets = Cmdlets.Value.Select(c => c.Name).Order().ToList();
        Assert.NotEmpty(cmdlets);
        Assert.Equal(cmdlets, documented);
        foreach (var cmdlet in Cmdlets.Value)
        {
            var help = CommandHelp(cmdlet.Name);
            Assert.False(string.IsNullOrWhiteSpace(help.Element(Command + "details")!.Element(Maml + "description")!.Value), $"{cmdlet.Name}: synopsis");
            Assert.False(string.IsNullOrWhiteSpace(help.Element(Maml + "description")!.Value), $"{cmdlet.Name}: description");
            var examples = help.Element(Command + "examples")!.Elements(Command + "example").ToList();
            Assert.True(examples.Count >= 2, $"{cmdlet.Name}: {examples.Count} example(s)");
            Assert.All(examples, e => Assert.False(string.IsNullOrWhiteSpace(e.Element(Dev + "code")!.Value)));
            Assert.NotEmpty(help.Element(Command + "returnValues")!.Elements());
            Assert.NotEmpty(help.Element(Command + "relatedLinks")!.Elements());
        }
    }

    [Fact]
    public void EveryParameter_IsDocumented_WithItsTypeRequiredPositionAndPipelineInput()
    {
        foreach (var cmdlet in Cmdlets.Value)
        {
            var documented = CommandHelp(cmdlet.Name).Element(Command + "parameters")!.Elements(Command + "parameter")
                .ToDictionary(p => p.Element(Maml + "name")!.Value);
            var expected = cmdlet.Parameters.Select(p => p.Name).Concat(cmdlet.AddedParameters).Order().ToList();
            Assert.Equal(expected, documented.Keys.Order().ToList());

            foreach (var parameter in cmdlet.Parameters)
            {
                var help = documented[parameter.Name];
                Assert.False(string.IsNullOrWhiteSpace(help.Element(Maml + "description")!.Value), $"{cmdlet.Name} -{parameter.Name}: description");
                Assert.Equal(TypeNames.Value[(cmdlet.Name, parameter.Name)], help.Element(Dev + "type")!.Element(Maml + "name")!.Value);
                var first = parameter.Bindings[0];
                Assert.Equal(first.Mandatory ? "true" : "false", help.Attribute("required")!.Value);
                Assert.Equal(first.Position?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "named", help.Attribute("position")!.Value);
                var pipeline = help.Attribute("pipelineInput")!.Value;
                Assert.Equal(first.ByValue, pipeline.Contains("ByValue", StringComparison.Ordinal));
                Assert.Equal(first.ByPropertyName, pipeline.Contains("ByPropertyName", StringComparison.Ordinal));
            }
        }
    }

    [Fact]
    public void TheSyntax_HasOneItemPerParameterSet_WithExactlyTheParametersOfThatSet()
    {
        foreach (var cmdlet in Cmdlets.Value)
        {
            var named = cmdlet.Parameters.SelectMany(p => p.Bindings).Select(b => b.Set).Where(s => s != "__AllParameterSets").Distinct().ToList();
            var items = CommandHelp(cmdlet.Name).Element(Command + "syntax")!.Elements(Command + "syntaxItem").ToList();
            Assert.Equal(Math.Max(1, named.Count), items.Count);
            var sets = named.Count == 0 ? ["__AllParameterSets"] : named;
            var expectedPerSet = sets.Select(set => cmdlet.Parameters
                    .Where(p => p.Bindings.Any(b => b.Set == set || b.Set == "__AllParameterSets")).Select(p => p.Name)
                    .Concat(cmdlet.AddedParameters).Order().ToList())
                .Select(l => string.Join(",", l)).Order().ToList();
            var actualPerSet = items.Select(i => string.Join(",", i.Elements(Command + "parameter").Select(p => p.Element(Maml + "name")!.Value).Order()))
                .Order().ToList();
            Assert.Equal(expectedPerSet, actualPerSet);
            if (cmdlet.DefaultSet is { } defaultSet && named.Count > 1)
            {
                // The default set is shown first, as Get-Help does.
                var first = items[0].Elements(Command + "parameter").Select(p => p.Element(Maml + "name")!.Value).ToHashSet();
                Assert.All(cmdlet.Parameters.Where(p => p.Bindings.Any(b => b.Set == defaultSet)), p => Assert.Contains(p.Name, first));
            }
        }
    }

    [Fact]
    public void TheAboutTopic_IsBuilt_AndExplainsTheConcepts()
    {
        var text = File.ReadAllText(Path.Combine(BuiltModule.Directory, "en-US", "about_EtPhoneHome.help.txt"));
        Assert.StartsWith("TOPIC", text, StringComparison.Ordinal);
        foreach (var heading in new[] { "SHORT DESCRIPTION", "LONG DESCRIPTION", "Phoning home", "Keys, approval and key mismatch", "session secret", "R2", "Rate limits", "Webhooks", "MCP", "data directory" })
        {
            Assert.Contains(heading, text, StringComparison.Ordinal);
        }

        // Prose is wrapped at 80 columns; code (indented 8) is kept as written.
        Assert.All(text.Split('\n').Where(l => !l.StartsWith("        ", StringComparison.Ordinal)), line => Assert.True(line.TrimEnd().Length <= 80, line));
    }

    // ----- the generator refuses help that does not match the cmdlets -----

    private static CommandMetadata SampleCommand() => new("Get", "EphThing", "Name", true,
    [
        new ParameterMetadata("Name", "String[]", "System.String[]", false, [], true, [new ParameterBinding("Name", false, 0, true, false)]),
        new ParameterMetadata("Id", "String[]", "System.String[]", false, ["Uuid"], false, [new ParameterBinding("Id", true, null, false, true)]),
    ], ["EtPhoneHome.EphThing"]);

    private static string SamplePage(string parameters) => $$"""
        # Get-EphThing
        ## SYNOPSIS
        Gets things.
        ## SYNTAX
        ### Name (Default)
        ```
        Get-EphThing
        ```
        ### Id
        ```
        Get-EphThing -Id
        ```
        ## DESCRIPTION
        Things.
        ## EXAMPLES
        ### Example 1
        ```powershell
        Get-EphThing
        ```
        One.
        ### Example 2
        ```powershell
        Get-EphThing | Get-EphThing
        ```
        Two.
        ## PARAMETERS
        {{parameters}}
        ## INPUTS
        ### System.String[]
        Names.
        ## OUTPUTS
        ### EtPhoneHome.EphThing
        Things.
        ## RELATED LINKS
        [Get-EphClient](Get-EphClient.md)
        """;

    private const string NameSection = """
        ### -Name
        Names.
        ```yaml
        Type: String[]
        Parameter Sets: Name
        Aliases:
        Required: False
        Position: 0
        Accept pipeline input: True (ByValue)
        Accept wildcard characters: True
        ```
        """;

    private const string IdSection = """
        ### -Id
        Ids.
        ```yaml
        Type: String[]
        Parameter Sets: Id
        Aliases: Uuid
        Required: True
        Position: Named
        Accept pipeline input: True (ByPropertyName)
        Accept wildcard characters: False
        ```
        """;

    private const string RiskSections = """
        ### -WhatIf
        Shows.
        ```yaml
        Type: SwitchParameter
        ```
        ### -Confirm
        Asks.
        ```yaml
        Type: SwitchParameter
        ```
        """;

    private static IReadOnlyList<string> Check(string parameters) =>
        HelpValidator.Validate(SampleCommand(), HelpMarkdown.Parse("Get-EphThing.md", SamplePage(parameters))).ToList();

    [Fact]
    public void Generator_AcceptsHelpThatMatches()
    {
        Assert.Empty(Check(NameSection + "\n" + IdSection + "\n" + RiskSections));
    }

    [Fact]
    public void Generator_FailsForAnUndocumentedParameter()
    {
        var errors = Check(NameSection + "\n" + RiskSections);
        Assert.Contains(errors, e => e.Contains("-Id has no '### -Id' section", StringComparison.Ordinal));
    }

    [Fact]
    public void Generator_FailsForAWrongTypeSetOrPipelineInput()
    {
        var wrong = IdSection.Replace("Type: String[]", "Type: String", StringComparison.Ordinal)
            .Replace("Parameter Sets: Id", "Parameter Sets: (All)", StringComparison.Ordinal)
            .Replace("True (ByPropertyName)", "False", StringComparison.Ordinal);
        var errors = Check(NameSection + "\n" + wrong + "\n" + RiskSections);
        Assert.Contains(errors, e => e.StartsWith("-Id: Type 'String' should be 'String[]'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("-Id: Parameter Sets '(All)' should be 'Id'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("-Id: Accept pipeline input 'False' should be 'True (ByPropertyName)'", StringComparison.Ordinal));
    }

    [Fact]
    public void Generator_FailsForMissingWhatIfOrAParameterTheCmdletLacks()
    {
        var errors = Check(NameSection + "\n" + IdSection + "\n### -Force\nForces.\n```yaml\nType: SwitchParameter\n```\n");
        Assert.Contains(errors, e => e.Contains("'### -WhatIf' is missing", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("documents -Force", StringComparison.Ordinal));
    }

    [Fact]
    public void Generator_FailsForACmdletWithoutAPage_AndAPageWithoutACmdlet()
    {
        var page = HelpMarkdown.Parse("Get-EphOther.md", SamplePage(NameSection).Replace("# Get-EphThing", "# Get-EphOther", StringComparison.Ordinal));
        var errors = HelpValidator.Validate([SampleCommand()], [page]);
        Assert.Contains(errors, e => e.StartsWith("Get-EphThing: no help page", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("describes no cmdlet", StringComparison.Ordinal));
    }

    [Fact]
    public void Generator_FailsForFewerThanTwoExamples()
    {
        var text = SamplePage(NameSection + "\n" + IdSection + "\n" + RiskSections);
        var oneExample = text[..text.IndexOf("### Example 2", StringComparison.Ordinal)] + text[text.IndexOf("## PARAMETERS", StringComparison.Ordinal)..];
        var errors = HelpValidator.Validate(SampleCommand(), HelpMarkdown.Parse("Get-EphThing.md", oneExample));
        Assert.Contains(errors, e => e.Contains("at least 2 examples", StringComparison.Ordinal));
    }
}
