using System.Text.RegularExpressions;

namespace EtPhoneHome.ModuleTool;

internal sealed record HelpExample(string Title, string Code, IReadOnlyList<string> Remarks);

internal sealed record HelpParameter(string Name, IReadOnlyList<string> Description, IReadOnlyDictionary<string, string> Fields);

internal sealed record HelpType(string TypeName, IReadOnlyList<string> Description);

internal sealed record HelpLink(string Text, string Uri);

/// <summary>A cmdlet help page in platyPS markdown form (docs/help/Verb-Noun.md).</summary>
internal sealed record HelpPage(
    string File,
    string Name,
    IReadOnlyList<string> Synopsis,
    IReadOnlyList<string> SyntaxSets,
    IReadOnlyList<string> Description,
    IReadOnlyList<HelpExample> Examples,
    IReadOnlyList<HelpParameter> Parameters,
    IReadOnlyList<HelpType> Inputs,
    IReadOnlyList<HelpType> Outputs,
    IReadOnlyList<string> Notes,
    IReadOnlyList<HelpLink> RelatedLinks);

/// <summary>Reads the platyPS markdown schema 2.0.0 that docs/help uses.</summary>
internal static partial class HelpMarkdown
{
    private sealed record Block(string Heading, List<string> Lines);

    public static HelpPage Parse(string file, string text)
    {
        var lines = StripFrontMatter(text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n'));
        var name = lines.FirstOrDefault(l => l.StartsWith("# ", StringComparison.Ordinal))?[2..].Trim() ?? "";
        var sections = Split(lines, "## ").ToDictionary(b => b.Heading.ToUpperInvariant(), b => b.Lines);
        List<string> Section(string heading) => sections.TryGetValue(heading, out var l) ? l : [];

        var syntaxSets = Split(Section("SYNTAX"), "### ")
            .Select(b => b.Heading.Replace("(Default)", "", StringComparison.Ordinal).Trim())
            .ToList();

        var examples = Split(Section("EXAMPLES"), "### ").Select(b =>
        {
            var (code, rest) = TakeFirstFence(b.Lines);
            return new HelpExample(b.Heading, code, Paragraphs(rest));
        }).ToList();

        var parameters = Split(Section("PARAMETERS"), "### ")
            .Where(b => b.Heading.StartsWith('-'))
            .Select(b =>
            {
                var (yaml, rest) = TakeFirstFence(b.Lines);
                var fields = yaml.Split('\n')
                    .Select(l => l.Split(':', 2))
                    .Where(p => p.Length == 2)
                    .ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
                return new HelpParameter(b.Heading[1..].Trim(), Paragraphs(rest), fields);
            })
            .ToList();

        static List<HelpType> Types(List<string> lines) =>
            [.. Split(lines, "### ").Select(b => new HelpType(b.Heading, Paragraphs(b.Lines)))];

        var links = Section("RELATED LINKS")
            .Select(l => LinkPattern().Match(l))
            .Where(m => m.Success)
            .Select(m => new HelpLink(m.Groups[1].Value, m.Groups[2].Value))
            .ToList();

        return new HelpPage(file, name, Paragraphs(Section("SYNOPSIS")), syntaxSets, Paragraphs(Section("DESCRIPTION")), examples,
            parameters, Types(Section("INPUTS")), Types(Section("OUTPUTS")), Paragraphs(Section("NOTES")), links);
    }

    private static List<string> StripFrontMatter(string[] lines)
    {
        if (lines.Length > 0 && lines[0].Trim() == "---")
        {
            var end = Array.FindIndex(lines, 1, l => l.Trim() == "---");
            if (end > 0)
            {
                return [.. lines.Skip(end + 1)];
            }
        }

        return [.. lines];
    }

    /// <summary>Splits lines at headings with the prefix, outside code fences; text before the first heading is dropped.</summary>
    private static IEnumerable<Block> Split(List<string> lines, string prefix)
    {
        Block? current = null;
        var inFence = false;
        foreach (var line in lines)
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                inFence = !inFence;
            }

            if (!inFence && line.StartsWith(prefix, StringComparison.Ordinal))
            {
                if (current is not null)
                {
                    yield return current;
                }

                current = new Block(line[prefix.Length..].Trim(), []);
                continue;
            }

            if (!inFence && prefix == "### " && line.StartsWith("## ", StringComparison.Ordinal))
            {
                break;
            }

            current?.Lines.Add(line);
        }

        if (current is not null)
        {
            yield return current;
        }
    }

    private static (string Code, List<string> Remainder) TakeFirstFence(List<string> lines)
    {
        var start = lines.FindIndex(l => l.TrimStart().StartsWith("```", StringComparison.Ordinal));
        if (start < 0)
        {
            return ("", lines);
        }

        var end = lines.FindIndex(start + 1, l => l.TrimStart().StartsWith("```", StringComparison.Ordinal));
        if (end < 0)
        {
            end = lines.Count;
        }

        var code = string.Join('\n', lines.Skip(start + 1).Take(end - start - 1)).TrimEnd();
        var rest = lines.Take(start).Concat(lines.Skip(end + 1)).ToList();
        return (code, rest);
    }

    /// <summary>Paragraphs of plain text: wrapped lines joined; code fences kept line for line; markdown marks removed.</summary>
    public static List<string> Paragraphs(IEnumerable<string> lines)
    {
        var result = new List<string>();
        var current = new List<string>();
        var inFence = false;
        var fence = new List<string>();

        void Flush()
        {
            if (current.Count > 0)
            {
                result.Add(Inline(string.Join(' ', current.Select(l => l.Trim()))));
                current.Clear();
            }
        }

        foreach (var line in lines)
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                if (inFence)
                {
                    result.Add(string.Join('\n', fence));
                    fence.Clear();
                }
                else
                {
                    Flush();
                }

                inFence = !inFence;
                continue;
            }

            if (inFence)
            {
                fence.Add(line);
            }
            else if (string.IsNullOrWhiteSpace(line))
            {
                Flush();
            }
            else if (line.TrimStart().StartsWith("- ", StringComparison.Ordinal) || line.TrimStart().StartsWith("* ", StringComparison.Ordinal))
            {
                // A list item starts its own paragraph.
                Flush();
                current.Add(line);
            }
            else
            {
                current.Add(line);
            }
        }

        Flush();
        if (fence.Count > 0)
        {
            result.Add(string.Join('\n', fence));
        }

        return result;
    }

    /// <summary>Removes inline markdown: `code`, **bold**, [text](link) → text.</summary>
    public static string Inline(string text)
    {
        text = LinkPattern().Replace(text, "$1");
        return text.Replace("**", "", StringComparison.Ordinal).Replace("`", "", StringComparison.Ordinal);
    }

    [GeneratedRegex(@"\[([^\]]+)\]\(([^)]*)\)")]
    private static partial Regex LinkPattern();
}
