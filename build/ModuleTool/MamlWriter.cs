using System.Globalization;
using System.Xml.Linq;

namespace EtPhoneHome.ModuleTool;

/// <summary>
/// Writes the MAML file Get-Help reads (&lt;module assembly&gt;-Help.xml). Syntax, parameter attributes and types
/// come from the compiled cmdlets; prose comes from the markdown pages.
/// </summary>
internal static class MamlWriter
{
    public static readonly XNamespace Msh = "http://msh";
    public static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
    public static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
    public static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";

    public static XDocument Build(IReadOnlyList<CommandMetadata> commands, IReadOnlyList<HelpPage> pages)
    {
        var byName = pages.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        var root = new XElement(Msh + "helpItems", new XAttribute("schema", "maml"),
            new XAttribute(XNamespace.Xmlns + "maml", Maml),
            new XAttribute(XNamespace.Xmlns + "command", Command),
            new XAttribute(XNamespace.Xmlns + "dev", Dev));
        foreach (var command in commands)
        {
            root.Add(CommandElement(command, byName[command.Name]));
        }

        return new XDocument(new XDeclaration("1.0", "utf-8", null), root);
    }

    private static XElement Paras(IEnumerable<string> paragraphs) =>
        new(Maml + "description", paragraphs.Select(p => new XElement(Maml + "para", p)));

    private static XElement CommandElement(CommandMetadata command, HelpPage page)
    {
        var help = page.Parameters.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        var all = command.Parameters.ToList();
        IReadOnlyList<string> Describe(string name) => help.TryGetValue(name, out var h) ? h.Description : [];

        return new XElement(Command + "command",
            new XElement(Command + "details",
                new XElement(Command + "name", command.Name),
                new XElement(Command + "verb", command.Verb),
                new XElement(Command + "noun", command.Noun),
                Paras(page.Synopsis)),
            Paras(page.Description),
            new XElement(Command + "syntax", command.ParameterSets().Select(set => new XElement(Command + "syntaxItem",
                new XElement(Maml + "name", command.Name),
                all.Where(p => p.InSet(set))
                    .OrderBy(p => p.BindingFor(set).Position ?? int.MaxValue)
                    .ThenBy(p => p.BindingFor(set).Mandatory ? 0 : 1)
                    .Select(p => ParameterElement(p, p.BindingFor(set), Describe(p.Name), help.GetValueOrDefault(p.Name), inSyntax: true))
                    .Concat(RiskParameters(command, help, inSyntax: true))))),
            new XElement(Command + "parameters",
                all.Select(p => ParameterElement(p, p.Bindings[0], Describe(p.Name), help.GetValueOrDefault(p.Name), inSyntax: false))
                    .Concat(RiskParameters(command, help, inSyntax: false))),
            new XElement(Command + "inputTypes", page.Inputs.Select(t => new XElement(Command + "inputType", TypeElement(t.TypeName), Paras(t.Description)))),
            new XElement(Command + "returnValues", page.Outputs.Select(t => new XElement(Command + "returnValue", TypeElement(t.TypeName), Paras(t.Description)))),
            new XElement(Maml + "alertSet", new XElement(Maml + "alert", page.Notes.Select(n => new XElement(Maml + "para", n)))),
            new XElement(Command + "examples", page.Examples.Select(e => new XElement(Command + "example",
                new XElement(Maml + "title", $"-------------------------- {e.Title} --------------------------"),
                new XElement(Dev + "code", e.Code),
                new XElement(Dev + "remarks", e.Remarks.Select(r => new XElement(Maml + "para", r)))))),
            new XElement(Command + "relatedLinks", page.RelatedLinks.Select(l => new XElement(Maml + "navigationLink",
                new XElement(Maml + "linkText", l.Text),
                new XElement(Maml + "uri", l.Uri.StartsWith("http", StringComparison.OrdinalIgnoreCase) ? l.Uri : "")))));
    }

    private static XElement TypeElement(string name) =>
        new(Dev + "type", new XElement(Maml + "name", name), new XElement(Maml + "uri"));

    private static IEnumerable<XElement> RiskParameters(CommandMetadata command, Dictionary<string, HelpParameter> help, bool inSyntax)
    {
        if (command.SupportsPaging)
        {
            foreach (var (name, typeName, fullTypeName) in CommandMetadata.PagingParameters)
            {
                var paging = new ParameterMetadata(name, typeName, fullTypeName, typeName == "SwitchParameter", [], false,
                    [new ParameterBinding(ParameterMetadata.AllSets, false, null, false, false)]);
                yield return ParameterElement(paging, paging.Bindings[0], help.TryGetValue(name, out var ph) ? ph.Description : [], ph, inSyntax);
            }
        }

        if (!command.SupportsShouldProcess)
        {
            yield break;
        }

        foreach (var (name, alias) in new[] { ("WhatIf", "wi"), ("Confirm", "cf") })
        {
            var parameter = new ParameterMetadata(name, "SwitchParameter", "System.Management.Automation.SwitchParameter", true, [alias], false,
                [new ParameterBinding(ParameterMetadata.AllSets, false, null, false, false)]);
            yield return ParameterElement(parameter, parameter.Bindings[0], help.TryGetValue(name, out var h) ? h.Description : [], h, inSyntax);
        }
    }

    private static XElement ParameterElement(ParameterMetadata parameter, ParameterBinding binding, IReadOnlyList<string> description, HelpParameter? help, bool inSyntax)
    {
        var element = new XElement(Command + "parameter",
            new XAttribute("required", binding.Mandatory ? "true" : "false"),
            new XAttribute("variableLength", parameter.TypeName.EndsWith("[]", StringComparison.Ordinal) ? "true" : "false"),
            new XAttribute("globbing", parameter.Globbing ? "true" : "false"),
            new XAttribute("pipelineInput", HelpValidator.PipelineText(binding)),
            new XAttribute("position", binding.Position?.ToString(CultureInfo.InvariantCulture) ?? "named"),
            new XAttribute("aliases", parameter.Aliases.Count == 0 ? "none" : string.Join(", ", parameter.Aliases)),
            new XElement(Maml + "name", parameter.Name),
            Paras(description));
        if (!(inSyntax && parameter.IsSwitch))
        {
            element.Add(new XElement(Command + "parameterValue",
                new XAttribute("required", parameter.IsSwitch ? "false" : "true"),
                new XAttribute("variableLength", "false"), parameter.TypeName));
        }

        element.Add(new XElement(Dev + "type", new XElement(Maml + "name", parameter.TypeFullName), new XElement(Maml + "uri")));
        var defaultValue = help is not null && help.Fields.TryGetValue("Default value", out var d) && d.Length > 0 ? d : (parameter.IsSwitch ? "False" : "None");
        element.Add(new XElement(Dev + "defaultValue", defaultValue));
        return element;
    }
}
