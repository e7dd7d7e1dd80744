using System.Globalization;
using System.Text.Json;

namespace EtPhoneHome.Agent;

/// <summary><c>eph-agent status</c>: what the running agent last wrote to status.json.</summary>
public static class StatusVerb
{
    public const string Usage = """
        usage: eph-agent status [--config-dir DIR] [--json]
          Shows the connection state (connecting, pending, key_mismatch, online, backoff, stopped), the server,
          the tunnel port and the uuid, as written by 'eph-agent run'. Says "not running" if its process is gone.
        """;

    public static int Run(IReadOnlyList<string> args)
    {
        var cl = CommandLine.Parse(args, ["config-dir"], ["json"]);
        if (cl.Help)
        {
            Console.Out.WriteLine(Usage);
            return 0;
        }

        var dir = cl.ConfigDir();
        var config = AgentConfig.Load(dir);
        var status = AgentStatus.Load(dir);
        var running = status is not null && status.State != AgentStates.Stopped && IsAlive(status.Pid);
        if (cl.Flag("json"))
        {
            var shown = status ?? new AgentStatus { State = AgentStates.Stopped, Server = $"{config.ServerUser}@{config.ServerHost}:{config.ServerPort}" };
            if (!running && shown.State != AgentStates.Stopped)
            {
                shown = shown with { State = AgentStates.Stopped, LastError = "not running (process " + shown.Pid.ToString(CultureInfo.InvariantCulture) + " is gone)" };
            }

            Console.Out.WriteLine(JsonSerializer.Serialize(shown, AgentJson.Default.AgentStatus));
            return running ? 0 : 3;
        }

        if (status is null)
        {
            Console.Out.WriteLine($"not running (no {AgentStatus.FileName} yet); server {config.ServerUser}@{config.ServerHost}:{config.ServerPort}");
            return 3;
        }

        var inv = CultureInfo.InvariantCulture;
        Console.Out.WriteLine(running ? $"state:       {status.State}" : $"state:       not running (last state {status.State})");
        Console.Out.WriteLine($"server:      {status.Server}");
        Console.Out.WriteLine($"uuid:        {status.Uuid ?? AgentState.Load(dir).Uuid ?? "(not registered yet)"}");
        Console.Out.WriteLine($"tunnel port: {(status.TunnelPort is { } p ? p.ToString(inv) : "-")}");
        Console.Out.WriteLine($"since:       {status.Since.ToString("u", inv)}");
        if (status.LastError is { } error)
        {
            Console.Out.WriteLine($"last error:  {error}");
        }

        if (running && status.NextAttempt is { } next)
        {
            Console.Out.WriteLine($"next try:    {next.ToString("u", inv)}");
        }

        Console.Out.WriteLine($"pid:         {status.Pid.ToString(inv)}{(running ? string.Empty : " (gone)")}");
        return running ? 0 : 3;
    }

    private static bool IsAlive(int pid)
    {
        if (pid <= 0)
        {
            return false;
        }

        if (OperatingSystem.IsLinux())
        {
            return Directory.Exists("/proc/" + pid.ToString(CultureInfo.InvariantCulture));
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
