using EtPhoneHome.Core.Text;

namespace EtPhoneHome;

/// <summary>
/// How the module's default views show text a client controls — command output, file content, file names. The
/// objects keep the exact text for scripts (<c>$r.Stdout</c>, <c>-ExpandProperty Output</c>); the views show it
/// through these, so a client's output cannot drive the operator's terminal (an escape sequence that writes the
/// clipboard, retitles or clears the window; a lone carriage return that hides a line).
/// </summary>
public static class EphDisplay
{
    /// <summary>One line: every control and format character escaped, line ends included.</summary>
    public static string? Line(string? text) => UntrustedText.ForTerminal(text);

    /// <summary>A block of lines: line feeds, tabs and CRLF kept, every other control or format character escaped.</summary>
    public static string? Block(string? text) => text is null ? null : UntrustedText.ForTerminalBlock(text);
}
