namespace EtPhoneHome.ModuleTool;

/// <summary>
/// Checks help pages against the compiled cmdlets. Every problem is reported (not only the first), each naming
/// the page and what to fix; any problem fails the build.
/// </summary>
internal static class HelpValidator
{
    public const int MinimumExamples = 2;

    public static IReadOnlyList<string> Validate(IReadOnlyList<CommandMetadata> commands, IReadOnlyList<HelpPage> pages)
    {
        var errors = new List<string>();
        var byName = pages.ToDictionary(p => Path.GetFileNameWithoutExtension(p.File), StringComparer.OrdinalIgnoreCase);
        foreach (var command in commands)
        {
            if (!byName.TryGetValue(command.Name, out var page))
            {
                errors.Add($"{command.Name}: no help page (write docs/help/{command.Name}.md in platyPS form)");
                continue;
            }

            errors.AddRange(Validate(command, page).Select(e => $"{Path.GetFileName(page.File)}: {e}"));
        }

        var names = commands.Select(c => c.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        errors.AddRange(pages.Where(p => !names.Contains(Path.GetFileNameWithoutExtension(p.File)))
            .Select(p => $"{Path.GetFileName(p.File)}: describes no cmdlet of the module"));
        return errors;
    }

    public static IEnumerable<string> Validate(CommandMetadata command, HelpPage page)
    {
        if (!string.Equals(page.Name, command.Name, StringComparison.Ordinal))
        {
            yield return $"title '# {page.Name}' must be '# {command.Name}'";
        }

        if (page.Synopsis.Count == 0)
        {
            yield return "## SYNOPSIS is empty";
        }

        if (page.Description.Count == 0)
        {
            yield return "## DESCRIPTION is empty";
        }

        if (page.Examples.Count(e => e.Code.Length > 0) < MinimumExamples)
        {
            yield return $"## EXAMPLES needs at least {MinimumExamples} examples with code (has {page.Examples.Count(e => e.Code.Length > 0)})";
        }

        var sets = command.ParameterSets();
        if (sets[0] != ParameterMetadata.AllSets)
        {
            var documented = page.SyntaxSets.Order(StringComparer.Ordinal).ToList();
            var actual = sets.Order(StringComparer.Ordinal).ToList();
            if (!documented.SequenceEqual(actual, StringComparer.Ordinal))
            {
                yield return $"## SYNTAX lists parameter sets [{string.Join(", ", documented)}], the cmdlet has [{string.Join(", ", actual)}]";
            }
        }

        var documentedParameters = page.Parameters.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var parameter in command.Parameters)
        {
            if (!documentedParameters.TryGetValue(parameter.Name, out var help))
            {
                yield return $"parameter -{parameter.Name} has no '### -{parameter.Name}' section";
                continue;
            }

            foreach (var problem in Compare(parameter, help))
            {
                yield return $"-{parameter.Name}: {problem}";
            }
        }

        var expected = command.Parameters.Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (command.SupportsShouldProcess)
        {
            foreach (var risk in new[] { "WhatIf", "Confirm" })
            {
                expected.Add(risk);
                if (!documentedParameters.ContainsKey(risk))
                {
                    yield return $"the cmdlet supports ShouldProcess: '### -{risk}' is missing";
                }
            }
        }

        if (command.SupportsPaging)
        {
            // PowerShell adds these; documenting them is welcome, not required.
            expected.UnionWith(CommandMetadata.PagingParameters.Select(p => p.Name));
        }

        foreach (var extra in page.Parameters.Where(p => !expected.Contains(p.Name)))
        {
            yield return $"documents -{extra.Name}, which the cmdlet does not have";
        }

        if (page.Inputs.Count == 0)
        {
            yield return "## INPUTS is empty (write ### None when nothing binds from the pipeline)";
        }

        foreach (var output in command.OutputTypes.Where(o => page.Outputs.All(h => h.TypeName != o)))
        {
            yield return $"## OUTPUTS lacks '### {output}'";
        }

        if (page.RelatedLinks.Count == 0)
        {
            yield return "## RELATED LINKS is empty";
        }
    }

    private static IEnumerable<string> Compare(ParameterMetadata parameter, HelpParameter help)
    {
        if (help.Description.Count == 0)
        {
            yield return "no description";
        }

        string Field(string name) => help.Fields.TryGetValue(name, out var v) ? v : "";

        if (!string.Equals(Field("Type"), parameter.TypeName, StringComparison.Ordinal))
        {
            yield return $"Type '{Field("Type")}' should be '{parameter.TypeName}'";
        }

        var sets = parameter.Bindings.Any(b => b.SetName == ParameterMetadata.AllSets)
            ? "(All)"
            : string.Join(", ", parameter.Bindings.Select(b => b.SetName).Order(StringComparer.Ordinal));
        var documentedSets = string.Join(", ", Field("Parameter Sets").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        if (!string.Equals(documentedSets, sets, StringComparison.Ordinal))
        {
            yield return $"Parameter Sets '{Field("Parameter Sets")}' should be '{sets}'";
        }

        var aliases = string.Join(", ", parameter.Aliases.Order(StringComparer.Ordinal));
        var documentedAliases = string.Join(", ", Field("Aliases").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        if (!string.Equals(documentedAliases, aliases, StringComparison.Ordinal))
        {
            yield return $"Aliases '{Field("Aliases")}' should be '{aliases}'";
        }

        // Where the sets disagree platyPS writes one block per set; only uniform values are compared.
        if (Uniform(parameter.Bindings.Select(b => b.Mandatory)) is { } mandatory && !Field("Required").StartsWith(mandatory ? "True" : "False", StringComparison.OrdinalIgnoreCase))
        {
            yield return $"Required '{Field("Required")}' should be '{mandatory}'";
        }

        if (Uniform(parameter.Bindings.Select(b => b.Position?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "Named")) is { } position
            && !string.Equals(Field("Position"), position, StringComparison.OrdinalIgnoreCase))
        {
            yield return $"Position '{Field("Position")}' should be '{position}'";
        }

        if (Uniform(parameter.Bindings.Select(PipelineText)) is { } pipeline && !string.Equals(Field("Accept pipeline input"), pipeline, StringComparison.OrdinalIgnoreCase))
        {
            yield return $"Accept pipeline input '{Field("Accept pipeline input")}' should be '{pipeline}'";
        }

        var wildcard = Field("Accept wildcard characters");
        if (wildcard.Length > 0 && !wildcard.Equals(parameter.Globbing ? "True" : "False", StringComparison.OrdinalIgnoreCase))
        {
            yield return $"Accept wildcard characters '{wildcard}' should be '{parameter.Globbing}'";
        }
    }

    private static T? Uniform<T>(IEnumerable<T> values)
    {
        var distinct = values.Distinct().ToList();
        return distinct.Count == 1 ? distinct[0] : default;
    }

    private static bool? Uniform(IEnumerable<bool> values)
    {
        var distinct = values.Distinct().ToList();
        return distinct.Count == 1 ? distinct[0] : null;
    }

    /// <summary>platyPS's wording: False, True (ByValue), True (ByPropertyName), True (ByPropertyName, ByValue).</summary>
    public static string PipelineText(ParameterBinding binding) => (binding.ByValue, binding.ByPropertyName) switch
    {
        (true, true) => "True (ByPropertyName, ByValue)",
        (true, false) => "True (ByValue)",
        (false, true) => "True (ByPropertyName)",
        _ => "False",
    };
}
