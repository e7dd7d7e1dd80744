using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Operators: people's SSH keys with a name and a role (IOperatorStore).
public sealed partial class SqliteRegistry : IOperatorStore
{
    public OperatorRecord AddOperator(string name, string publicKeyLine, OperatorRole role, string addedBy, string? surface = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(addedBy);
        var valid = OperatorNames.Validate(name);
        var key = OpenSshPublicKey.Parse(publicKeyLine);
        _ = OperatorRoles.Wire(role);
        var started = Now;
        using var c = Connect();
        using var tx = BeginWrite(c);
        var client = GetKey(c, tx, key.Fingerprint);
        if (client is { Status: KeyStatus.Pending, Uuid: null })
        {
            // A key offered before it was added (an operator who tried to connect first lands in the pending list, as
            // any unknown key does): the admin names it as an operator's now, so it stops being a would-be client.
            Exec(c, tx, "DELETE FROM keys WHERE fingerprint = @f AND status = 'pending'", ("@f", key.Fingerprint));
            client = null;
        }

        if (client is not null)
        {
            throw new RegistryValidationException("key",
                $"key {key.Fingerprint} is a client key ({StatusText(client.Status)}{(client.Uuid is null ? "" : ", client " + client.Uuid)}); an operator needs a key of its own");
        }

        var existing = GetOperatorRow(c, tx, "fingerprint = @f", ("@f", key.Fingerprint));
        if (existing is { Removed: false })
        {
            throw new RegistryValidationException("key", $"key {key.Fingerprint} is already the key of operator '{existing.Name}'");
        }

        if (GetOperatorRow(c, tx, "name = @n AND removed_at IS NULL", ("@n", valid)) is { } holder)
        {
            throw new RegistryValidationException("name", $"operator name '{holder.Name}' is taken (key {holder.Fingerprint}); choose another or remove that operator first");
        }

        var now = Now;
        if (existing is null)
        {
            Exec(c, tx, """
                INSERT INTO operators(fingerprint, name, key_type, public_key, role, added_at, added_by)
                VALUES (@f, @n, @t, @k, @r, @now, @by)
                """,
                ("@f", key.Fingerprint), ("@n", valid), ("@t", key.KeyType), ("@k", key.Blob), ("@r", OperatorRoles.Wire(role)),
                ("@now", now), ("@by", addedBy));
        }
        else
        {
            // The key of a removed operator comes back: the same row, active again, with the name and role given now.
            Exec(c, tx, """
                UPDATE operators SET name = @n, key_type = @t, public_key = @k, role = @r, added_at = @now, added_by = @by,
                    removed_at = NULL, removed_by = NULL
                WHERE fingerprint = @f
                """,
                ("@f", key.Fingerprint), ("@n", valid), ("@t", key.KeyType), ("@k", key.Blob), ("@r", OperatorRoles.Wire(role)),
                ("@now", now), ("@by", addedBy));
        }

        var added = GetOperatorRow(c, tx, "fingerprint = @f", ("@f", key.Fingerprint))!;
        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.AddOperator,
            Actor = addedBy,
            Surface = surface ?? RegistrySurface,
            Status = OperationNames.Wire(OperationStatus.Succeeded),
            Detail = AuditEntry.Truncate($"{added.Name} ({added.Fingerprint}) as {OperatorRoles.Wire(role)}{(existing is null ? "" : ", reactivated")}"),
            DurationMs = Now - started,
        });
        tx.Commit();
        return added;
    }

    public OperatorRecord? GetOperator(string nameOrFingerprint)
    {
        using var c = Connect();
        return ActiveOperator(c, null, nameOrFingerprint);
    }

    public OperatorRecord? FindOperatorKey(string fingerprint)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        using var c = Connect();
        return GetOperatorRow(c, null, "fingerprint = @f", ("@f", fingerprint));
    }

    public IReadOnlyList<OperatorRecord> ListOperators(bool includeRemoved = false)
    {
        using var c = Connect();
        using var cmd = Command(c, null,
            "SELECT * FROM operators" + (includeRemoved ? "" : " WHERE removed_at IS NULL") + " ORDER BY name COLLATE NOCASE, removed_at IS NOT NULL, fingerprint");
        return ReadAll(cmd, ReadOperator);
    }

    public OperatorRecord RemoveOperator(string nameOrFingerprint, string by, string? surface = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(by);
        var started = Now;
        using var c = Connect();
        using var tx = BeginWrite(c);
        var target = ActiveOperator(c, tx, nameOrFingerprint) ?? throw NoOperator(nameOrFingerprint);
        if (target.Role == OperatorRole.Admin && ActiveAdmins(c, tx) == 1)
        {
            throw new RegistryValidationException("name",
                $"operator '{target.Name}' is the last active admin; add or promote another admin first, so the fleet keeps one");
        }

        Exec(c, tx, "UPDATE operators SET removed_at = @now, removed_by = @by WHERE fingerprint = @f",
            ("@now", Now), ("@by", by), ("@f", target.Fingerprint));
        var removed = GetOperatorRow(c, tx, "fingerprint = @f", ("@f", target.Fingerprint))!;
        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.RemoveOperator,
            Actor = by,
            Surface = surface ?? RegistrySurface,
            Status = OperationNames.Wire(OperationStatus.Succeeded),
            Detail = $"{removed.Name} ({removed.Fingerprint}), {OperatorRoles.Wire(removed.Role)}",
            DurationMs = Now - started,
        });
        tx.Commit();
        return removed;
    }

    public OperatorRecord SetOperatorRole(string nameOrFingerprint, OperatorRole role, string by, string? surface = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(by);
        var wire = OperatorRoles.Wire(role);
        var started = Now;
        using var c = Connect();
        using var tx = BeginWrite(c);
        var target = ActiveOperator(c, tx, nameOrFingerprint) ?? throw NoOperator(nameOrFingerprint);
        var unchanged = target.Role == role;
        if (!unchanged && target.Role == OperatorRole.Admin && ActiveAdmins(c, tx) == 1)
        {
            throw new RegistryValidationException("role",
                $"operator '{target.Name}' is the last active admin; add or promote another admin first, so the fleet keeps one");
        }

        if (!unchanged)
        {
            Exec(c, tx, "UPDATE operators SET role = @r WHERE fingerprint = @f", ("@r", wire), ("@f", target.Fingerprint));
        }

        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.SetOperatorRole,
            Actor = by,
            Surface = surface ?? RegistrySurface,
            Status = OperationNames.Wire(unchanged ? OperationStatus.Unchanged : OperationStatus.Succeeded),
            Detail = $"{target.Name} ({target.Fingerprint}): {OperatorRoles.Wire(target.Role)} → {wire}",
            DurationMs = Now - started,
        });
        var result = GetOperatorRow(c, tx, "fingerprint = @f", ("@f", target.Fingerprint))!;
        tx.Commit();
        return result;
    }

    /// <summary>The active operator with this name (any case) or fingerprint.</summary>
    private static OperatorRecord? ActiveOperator(DbConnection c, DbTransaction? tx, string nameOrFingerprint)
    {
        var id = (nameOrFingerprint ?? "").Trim();
        return id.Length == 0 ? null
            : GetOperatorRow(c, tx, "(fingerprint = @id OR name = @id) AND removed_at IS NULL", ("@id", id));
    }

    /// <summary>The operator holding this fingerprint, when it is an operator's key (the keys verbs refuse it as a client's).</summary>
    private static string? OperatorNameOfKey(DbConnection c, DbTransaction? tx, string fingerprint) =>
        Scalar<string>(c, tx, "SELECT name FROM operators WHERE fingerprint = @f", ("@f", fingerprint));

    private static long ActiveAdmins(DbConnection c, DbTransaction tx) =>
        Scalar<long>(c, tx, "SELECT COUNT(*) FROM operators WHERE role = 'admin' AND removed_at IS NULL");

    private static RegistryNotFoundException NoOperator(string? id) =>
        new($"no active operator named '{Text.UntrustedText.ForTerminal(id ?? "")}' or with that key fingerprint");

    private static OperatorRecord? GetOperatorRow(DbConnection c, DbTransaction? tx, string where, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, "SELECT * FROM operators WHERE " + where + " ORDER BY removed_at IS NOT NULL LIMIT 1", args);
        return ReadAll(cmd, ReadOperator).FirstOrDefault();
    }

    private static OperatorRecord ReadOperator(DbDataReader r) => new()
    {
        Name = Str(r, "name")!,
        Fingerprint = Str(r, "fingerprint")!,
        KeyType = Str(r, "key_type")!,
        PublicKey = Str(r, "public_key")!,
        Role = OperatorRoles.TryParse(Str(r, "role"), out var role) ? role : OperatorRole.Reader,
        AddedAt = Time(r, "added_at")!.Value,
        AddedBy = Str(r, "added_by")!,
        Removed = Long(r, "removed_at") is not null,
        RemovedAt = Time(r, "removed_at"),
    };
}
