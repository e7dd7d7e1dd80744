using System.Text;

namespace EtPhoneHome.ModuleTool;

/// <summary>
/// Turns an about_*.md page into the plain-text about_*.help.txt Get-Help shows: "# about_X" becomes TOPIC,
/// "## HEADING" an upper-case heading, prose is indented and wrapped at 80 columns, code is kept line for line.
/// </summary>
internal static class AboutText
{
    public const int Width = 80;

    public static string Convert(string markdown)
    {
        var output = new StringBuilder();
        var paragraph = new List<string>();
        var inFence = false;

        void Flush(int indent)
        {
            if (paragraph.Count == 0)
            {
                return;
            }

            var text = HelpMarkdown.Inline(string.Join(' ', paragraph.Select(l => l.Trim())));
            var hanging = text.StartsWith("- ", StringComparison.Ordinal) ? 2 : 0;
            foreach (var line in Wrap(text, Width - indent, hanging))
            {
                output.Append(' ', indent).AppendLine(line);
            }

            output.AppendLine();
            paragraph.Clear();
        }

        foreach (var raw in markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n'))
        {
            if (raw.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                Flush(4);
                if (inFence)
                {
                    output.AppendLine();
                }

                inFence = !inFence;
                continue;
            }

            if (inFence)
            {
                output.Append(' ', 8).AppendLine(raw.TrimEnd());
                continue;
            }

            if (raw.StartsWith("# ", StringComparison.Ordinal))
            {
                Flush(4);
                output.AppendLine("TOPIC").Append(' ', 4).AppendLine(raw[2..].Trim()).AppendLine();
            }
            else if (raw.StartsWith("## ", StringComparison.Ordinal))
            {
                Flush(4);
                output.AppendLine(raw[3..].Trim().ToUpperInvariant());
            }
            else if (raw.StartsWith("### ", StringComparison.Ordinal))
            {
                Flush(4);
                output.Append(' ', 2).AppendLine(HelpMarkdown.Inline(raw[4..].Trim())).AppendLine();
            }
            else if (string.IsNullOrWhiteSpace(raw))
            {
                Flush(4);
            }
            else
            {
                if (raw.TrimStart().StartsWith("- ", StringComparison.Ordinal))
                {
                    Flush(4);
                }

                paragraph.Add(raw);
            }
        }

        Flush(4);
        return output.ToString().TrimEnd() + Environment.NewLine;
    }

    private static IEnumerable<string> Wrap(string text, int width, int hanging)
    {
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line.ToString();
                line.Clear().Append(' ', hanging);
            }

            if (line.Length > 0 && line.ToString().Trim().Length > 0)
            {
                line.Append(' ');
            }

            line.Append(word);
        }

        if (line.Length > 0)
        {
            yield return line.ToString();
        }
    }
}
