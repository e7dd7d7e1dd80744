using System.Globalization;
using System.Text.RegularExpressions;

namespace EtPhoneHome.Agent;

/// <summary>What an ssh stderr line says about the reverse forward.</summary>
public enum ForwardOutcomeKind
{
    /// <summary>The line is not about the forward.</summary>
    None,
    /// <summary>sshd allocated a port (<c>Allocated port N for remote forward to …</c>).</summary>
    Allocated,
    /// <summary>sshd refused the forward (<c>Warning: remote port forwarding failed for listen port …</c>).</summary>
    Refused,
}

/// <summary>The forward outcome of one stderr line, with the allocated port when there is one.</summary>
public readonly record struct ForwardOutcome(ForwardOutcomeKind Kind, int? Port);

/// <summary>Parses the lines of OpenSSH that tell whether the reverse forward was granted.</summary>
public static partial class SshStderrParser
{
    [GeneratedRegex(@"^Allocated port (\d{1,5}) for remote forward to ", RegexOptions.CultureInvariant)]
    private static partial Regex AllocatedLine();

    [GeneratedRegex(@"^Warning: remote port forwarding failed for listen port ", RegexOptions.CultureInvariant)]
    private static partial Regex RefusedLine();

    // A forward of a fixed port is granted silently at INFO; ssh says so at DEBUG1 only ("remote forward success for:
    // listen 127.0.0.1:20417, connect 127.0.0.1:45678"). For port 0 the "Allocated port" line follows and decides.
    [GeneratedRegex(@"^debug1: remote forward (success|failure) for: listen (?:[^,]*:)?(\d{1,5}), connect ", RegexOptions.CultureInvariant)]
    private static partial Regex DebugVerdictLine();

    /// <summary>True for ssh's DEBUG1 chatter, which the agent neither logs nor reports as an error.</summary>
    public static bool IsDebug(string line) => line.StartsWith("debug", StringComparison.Ordinal);

    public static ForwardOutcome Parse(string line)
    {
        var trimmed = line.TrimEnd('\r', '\n');
        var allocated = AllocatedLine().Match(trimmed);
        if (allocated.Success
            && int.TryParse(allocated.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            && port is > 0 and <= 65535)
        {
            return new ForwardOutcome(ForwardOutcomeKind.Allocated, port);
        }

        var debug = DebugVerdictLine().Match(trimmed);
        if (debug.Success
            && int.TryParse(debug.Groups[2].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var listen)
            && listen is > 0 and <= 65535)
        {
            return debug.Groups[1].Value == "success"
                ? new ForwardOutcome(ForwardOutcomeKind.Allocated, listen)
                : new ForwardOutcome(ForwardOutcomeKind.Refused, null);
        }

        return RefusedLine().IsMatch(trimmed)
            ? new ForwardOutcome(ForwardOutcomeKind.Refused, null)
            : new ForwardOutcome(ForwardOutcomeKind.None, null);
    }
}
