using System.CommandLine;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// The workstation's own profile: <c>connect</c> (pin the server's host key, check the operator service answers, save
/// the connection by name) and <c>connections</c> (list, remove, forget-host-key).
/// </summary>
internal static class ConnectionVerbs
{
    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(ConnectCommand());
        root.Subcommands.Add(ConnectionsCommand());
    }

    private static EphRootCommand Root(ParseResult pr) =>
        pr.RootCommandResult.Command as EphRootCommand ?? throw new InvalidOperationException("the verbs run under Program.BuildRoot");

    private static Command ConnectCommand()
    {
        var name = new Option<string?>("--name") { Description = "Save the connection under this name (then --server NAME)." };
        var cmd = new Command("connect", "Connect to a server (--server [user@]host[:port]): pin its host key (shown and asked, or --host-key-fingerprint), check its operator service answers and say who it says you are; --name saves it.")
        {
            name,
        };
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            var root = Root(pr);
            var output = pr.InvocationConfiguration.Output;
            var error = pr.InvocationConfiguration.Error;
            if (RemoteCli.ServerOf(pr, root) is not { } server)
            {
                await error.WriteLineAsync("eph-server connect: name the server with --server [user@]host[:port]").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            var saveAs = pr.GetValue(name);
            if (saveAs is not null && !SavedConnections.IsValidName(saveAs))
            {
                await error.WriteLineAsync($"eph-server connect: the connection name '{UntrustedText.ForTerminal(saveAs, 80)}' is not valid: use 1 to {SavedConnections.MaxNameLength} letters, digits, '.', '_' or '-'").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            try
            {
                await using var remote = await root.RemoteConnector(new RemoteRequest(server, pr.GetValue<string?>("--key-file"), pr.GetValue<string?>("--host-key-fingerprint"), Surfaces.Cli, root.ProfileDirectory),
                    root.Prompt, error, ct).ConfigureAwait(false);
                var op = await remote.GetAsync(ct).ConfigureAwait(false);
                var who = op.Identity;
                await output.WriteLineAsync($"Connected to {who.Host} ({remote.Address}, host key {remote.PinnedKey.Fingerprint}) as {who.Operator}, role {who.Role.ToString().ToLowerInvariant()}; server {who.ServerVersion}.").ConfigureAwait(false);
                if (saveAs is not null)
                {
                    new SavedConnections(root.ProfileDirectory).Save(saveAs, remote.Address);
                    await output.WriteLineAsync($"Saved as '{saveAs}': eph-server --server {saveAs} …").ConfigureAwait(false);
                }

                return 0;
            }
            catch (OperatorRemoteException ex)
            {
                return await RemoteCli.RemoteErrorAsync("connect", ex, error).ConfigureAwait(false);
            }
            catch (RemoteConnectionException ex)
            {
                await error.WriteLineAsync($"eph-server connect: {ex.Message}").ConfigureAwait(false);
                return RemoteCli.ConnectionFailed;
            }
            catch (Exception ex) when (ex is ConnectionProfileException or FormatException or ArgumentException or IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"eph-server connect: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
                return ex is FormatException or ArgumentException ? OperatorVerbs.UsageError : 1;
            }
        });
        return cmd;
    }

    private static Command ConnectionsCommand()
    {
        var cmd = new Command("connections", "The saved connections and pinned server host keys of this workstation's profile ($ETPHONEHOME_CONFIG_DIR, else ~/.config/etphonehome).");
        var list = new Command("list", "List saved connections and pinned host keys (the default).");
        var removeName = new Argument<string>("name") { Description = "The saved connection's name." };
        var remove = new Command("remove", "Forget a saved connection (its host key stays pinned).") { removeName };
        var hostArg = new Argument<string>("host") { Description = "HOST[:PORT] (port 22 unless given) whose pinned host key to forget." };
        var forget = new Command("forget-host-key", "Forget a server's pinned host key (after it was changed on purpose); the next connection pins the new one.") { hostArg };
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(remove);
        cmd.Subcommands.Add(forget);
        cmd.SetAction(pr => List(pr));
        list.SetAction(pr => List(pr));
        remove.SetAction(pr => Guarded(pr, "connections remove", () =>
        {
            var n = pr.GetValue(removeName)!;
            var removed = new SavedConnections(Root(pr).ProfileDirectory).Remove(n);
            pr.InvocationConfiguration.Output.WriteLine(removed ? $"Removed the saved connection '{n}'." : $"No saved connection named '{UntrustedText.ForTerminal(n, 80)}'.");
            return removed ? 0 : 1;
        }));
        forget.SetAction(pr => Guarded(pr, "connections forget-host-key", () =>
        {
            var address = ServerAddress.Parse(pr.GetValue(hostArg)!);
            var removed = new HostKeyPins(Root(pr).ProfileDirectory).Remove(address);
            pr.InvocationConfiguration.Output.WriteLine(removed ? $"Forgot the host key pinned for {address.PinKey}; the next connection pins the key it is shown or given." : $"No host key is pinned for {address.PinKey}.");
            return removed ? 0 : 1;
        }));
        return cmd;
    }

    private static int List(ParseResult pr) => Guarded(pr, "connections", () =>
    {
        var output = pr.InvocationConfiguration.Output;
        var saved = new SavedConnections(Root(pr).ProfileDirectory).List();
        var pins = new HostKeyPins(Root(pr).ProfileDirectory).List();
        if (saved.Count == 0)
        {
            output.WriteLine("No saved connections.");
        }
        else
        {
            output.Write(OperatorRows.Table(["NAME", "SERVER", "HOST KEY"], saved.Select(c => new[] { c.Name, c.Address.ToString(), pins.TryGetValue(c.Address.PinKey, out var k) ? k.Fingerprint : "(not pinned)" }), maxCell: 80));
        }

        output.WriteLine(pins.Count == 0 ? "No pinned host keys." : "Pinned host keys:");
        foreach (var (host, key) in pins.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"  {host}  {key.Type} {key.Fingerprint}");
        }

        return 0;
    });

    private static int Guarded(ParseResult pr, string verb, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception ex) when (ex is ConnectionProfileException or FormatException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            pr.InvocationConfiguration.Error.WriteLine($"eph-server {verb}: {UntrustedText.ForTerminal(ex.Message)}");
            return ex is FormatException or ArgumentException ? OperatorVerbs.UsageError : 1;
        }
    }
}
