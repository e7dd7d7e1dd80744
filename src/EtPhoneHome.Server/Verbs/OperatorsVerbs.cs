using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// eph-server operators add|list|remove|set-role: the SSH keys of people who drive the fleet through the hub's operator
/// service, each with a role (reader, operator, admin).
/// </summary>
internal static class OperatorsVerbs
{
    /// <summary>The confirmation prompt of the command tree the verb was parsed by.</summary>
    private static OperatorPrompt Prompt(ParseResult pr) => (pr.RootCommandResult.Command as EphRootCommand)?.Prompt ?? OperatorPrompt.None;

    public static void Register(RootCommand root)
    {
        var operators = new Command("operators", "Operator keys: people who drive the fleet over SSH through the hub, each with a role (reader, operator, admin).");
        operators.Subcommands.Add(AddCommand());
        operators.Subcommands.Add(ListCommand());
        operators.Subcommands.Add(RemoveCommand());
        operators.Subcommands.Add(SetRoleCommand());
        root.Subcommands.Add(operators);
    }

    private static Option<string?> DataOption() => new("--data") { Description = "Data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "One JSON object per line (snake_case fields) instead of a table." };

    private static Option<string> RoleOption()
    {
        var role = new Option<string>("--role")
        {
            Description = "What the operator may do: reader (read only), operator (run commands, change clients), admin (also keys and operators).",
            Required = true,
        };
        role.Validators.Add(CheckRole);
        return role;
    }

    /// <summary>
    /// A role is checked while the command line is parsed, so a wrong one is the same usage error (exit 1, nothing sent)
    /// on the server host and through --server.
    /// </summary>
    private static void CheckRole(System.CommandLine.Parsing.SymbolResult result)
    {
        if (result.Tokens is [{ Value: var text }] && !OperatorRoles.TryParse(text, out _))
        {
            result.AddError(OperatorRoles.NotARole(text));
        }
    }

    /// <summary>
    /// The public key file of operators add. Not --key-file: that global option names the ssh private key a --server
    /// connection logs in with, and one name for both made `operators add --server … --key-file` ambiguous.
    /// </summary>
    internal const string PublicKeyFileOption = "--public-key-file";

    private static Command AddCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var name = new Option<string>("--name") { Description = "The operator's name: 1–64 letters, digits, '.', '_', '-' (unique).", Required = true };
        var key = new Option<string?>("--key") { Description = "The operator's public key line: \"ssh-ed25519 AAAA… comment\" (the .pub file's text)." };
        var keyFile = new Option<string?>(PublicKeyFileOption) { Description = "Read the public key line from this file (such as ~/.ssh/id_ed25519.pub) instead of --key." };
        var role = RoleOption();
        var cmd = new Command("add", "Add an operator key with a role; the key can then reach the hub's operator service through sshd, and nothing else.")
        {
            data, name, key, keyFile, role, json,
        };
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(key) is null) == (r.GetValue(keyFile) is null))
            {
                r.AddError($"give the public key with exactly one of --key or {PublicKeyFileOption}");
            }
        });
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
        {
            var line = pr.GetValue(key) ?? ReadKeyFile(pr.GetValue(keyFile)!);
            return Add(registry.Operators, pr.GetValue(name)!, line, pr.GetValue(role)!, pr.GetValue(json), pr.InvocationConfiguration.Output);
        }));
        return cmd;
    }

    private static Command ListCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var all = new Option<bool>("--all") { Description = "Removed operators too." };
        var cmd = new Command("list", "List operators: name, role, key fingerprint, who added them and when.") { data, all, json };
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
            List(registry.Operators, pr.GetValue(all), pr.GetValue(json), pr.InvocationConfiguration.Output)));
        return cmd;
    }

    private static Command RemoveCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var name = new Argument<string>("name") { Description = "The operator's name or key fingerprint (SHA256:…)." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation (required when no one can answer a prompt)." };
        var cmd = new Command("remove", "Remove an operator: sshd refuses the key from then on; the operator stays listed with --all. The last admin cannot be removed.")
        {
            data, name, yes, json,
        };
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
            Remove(registry.Operators, pr.GetValue(name)!, pr.GetValue(yes), pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error, Prompt(pr))));
        return cmd;
    }

    private static Command SetRoleCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var name = new Argument<string>("name") { Description = "The operator's name or key fingerprint (SHA256:…)." };
        var role = new Argument<string>("role") { Description = "The new role: reader, operator or admin." };
        role.Validators.Add(CheckRole);
        var cmd = new Command("set-role", "Change an operator's role; the last admin cannot be demoted.") { data, name, role, json };
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
            SetRole(registry.Operators, pr.GetValue(name)!, pr.GetValue(role)!, pr.GetValue(json), pr.InvocationConfiguration.Output)));
        return cmd;
    }

    /// <summary>The first non-empty, non-comment line of a public key file.</summary>
    internal static string ReadKeyFile(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (line.Trim() is { Length: > 0 } text && !text.StartsWith('#'))
            {
                return text;
            }
        }

        throw new InvalidOperationException($"{path} holds no public key line");
    }

    // ----- verb bodies (tested directly) -----

    internal static int Add(IOperatorStore operators, string name, string keyLine, string role, bool json, TextWriter output)
    {
        var parsedRole = OperatorRoles.Parse(role);
        var added = operators.AddOperator(name, keyLine, parsedRole, OperatorVerbs.Operator.Actor, OperatorVerbs.Operator.Surface);
        output.WriteLine(AddedText(added, json));
        return 0;
    }

    internal static string AddedText(OperatorRecord added, bool json) => json ? JsonLine(OperatorRow.From(added))
        : $"Added operator '{added.Name}' ({OperatorRoles.Wire(added.Role)}), key {added.Fingerprint}; it reaches the operator service through sshd and nothing else.";

    internal static int List(IOperatorStore operators, bool includeRemoved, bool json, TextWriter output) =>
        ListOutput(operators.ListOperators(includeRemoved), includeRemoved, json, output);

    internal static int ListOutput(IReadOnlyList<OperatorRecord> operators, bool includeRemoved, bool json, TextWriter output)
    {
        var rows = operators.Select(OperatorRow.From).ToList();
        if (json)
        {
            rows.ForEach(r => output.WriteLine(JsonLine(r)));
            return 0;
        }

        if (rows.Count == 0)
        {
            output.WriteLine(includeRemoved ? "No operators." : "No operators. eph-server operators add --name NAME --key \"ssh-ed25519 …\" --role admin adds one.");
            return 0;
        }

        output.Write(OperatorRows.Table(
            ["NAME", "ROLE", "FINGERPRINT", "KEY TYPE", "ADDED", "ADDED BY", "REMOVED"],
            rows.Select(r => new[] { r.Name, r.Role, r.Fingerprint, r.KeyType, r.AddedAt, r.AddedBy, r.RemovedAt ?? "" }),
            maxCell: 60));
        return 0;
    }

    internal static int Remove(IOperatorStore operators, string nameOrFingerprint, bool yes, bool json, TextWriter output, TextWriter error, OperatorPrompt prompt)
    {
        var target = operators.GetOperator(nameOrFingerprint)
            ?? throw new RegistryNotFoundException($"no active operator named '{UntrustedText.ForTerminal(nameOrFingerprint)}' or with that key fingerprint");
        if (ConfirmRemove(target, yes, output, error, prompt) is { } refused)
        {
            return refused;
        }

        var removed = operators.RemoveOperator(target.Fingerprint, OperatorVerbs.Operator.Actor, OperatorVerbs.Operator.Surface);
        output.WriteLine(RemovedText(removed, json));
        return 0;
    }

    /// <summary>Asks before a removal unless --yes; the exit code when it does not go ahead, null when it does.</summary>
    internal static int? ConfirmRemove(OperatorRecord target, bool yes, TextWriter output, TextWriter error, OperatorPrompt prompt)
    {
        if (!yes)
        {
            if (!prompt.IsInteractive())
            {
                error.WriteLine($"eph-server operators remove: refusing to remove operator '{target.Name}' without confirmation; add --yes to remove it (nothing was changed)");
                return OperatorVerbs.UsageError;
            }

            output.Write($"Remove operator '{target.Name}' ({OperatorRoles.Wire(target.Role)}, key {target.Fingerprint})? sshd refuses the key from then on. [y/N] ");
            output.Flush();
            if (prompt.ReadAnswer()?.Trim().ToLowerInvariant() is not ("y" or "yes"))
            {
                output.WriteLine("Not removed.");
                return 1;
            }
        }

        return null;
    }

    internal static string RemovedText(OperatorRecord removed, bool json) => json ? JsonLine(OperatorRow.From(removed))
        : $"Removed operator '{removed.Name}' (key {removed.Fingerprint}); sshd refuses the key from now on.";

    internal static int SetRole(IOperatorStore operators, string nameOrFingerprint, string role, bool json, TextWriter output)
    {
        var parsedRole = OperatorRoles.Parse(role);
        var before = operators.GetOperator(nameOrFingerprint);
        var changed = operators.SetOperatorRole(nameOrFingerprint, parsedRole, OperatorVerbs.Operator.Actor, OperatorVerbs.Operator.Surface);
        output.WriteLine(RoleSetText(before, changed, json));
        return 0;
    }

    internal static string RoleSetText(OperatorRecord? before, OperatorRecord changed, bool json) => json ? JsonLine(OperatorRow.From(changed))
        : before?.Role == changed.Role
            ? $"Operator '{changed.Name}' is already {OperatorRoles.Wire(changed.Role)}; nothing changed."
            : $"Operator '{changed.Name}' is now {OperatorRoles.Wire(changed.Role)}.";

    internal static string JsonLine(OperatorRow row) => JsonSerializer.Serialize(row, OperatorsJson.Default.OperatorRow);
}

/// <summary>One line of <c>operators list --json</c> (and of add, remove, set-role with --json).</summary>
internal sealed record OperatorRow(
    string Name,
    string Role,
    string Fingerprint,
    string KeyType,
    string AddedAt,
    string AddedBy,
    bool Removed,
    string? RemovedAt)
{
    public static OperatorRow From(OperatorRecord op) => new(
        op.Name,
        OperatorRoles.Wire(op.Role),
        op.Fingerprint,
        op.KeyType,
        OperatorRows.Time(op.AddedAt),
        UntrustedText.ForTerminal(op.AddedBy),
        op.Removed,
        op.RemovedAt is { } at ? OperatorRows.Time(at) : null);
}

/// <summary>Snake-case JSON for the operators verbs; nulls are written so every line has every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(OperatorRow))]
internal sealed partial class OperatorsJson : JsonSerializerContext;
