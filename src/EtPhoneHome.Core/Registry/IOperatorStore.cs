namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Operators: people's SSH keys with a name and a role, reaching the hub's operator service through sshd and eph-gate.
/// An operator key is never a client key. Removed operators stay as tombstones (their key is then refused by sshd); every
/// change is recorded in the history with who made it.
/// </summary>
public interface IOperatorStore
{
    /// <summary>
    /// Adds an operator, or reactivates a removed one whose key this is (with the new name and role).
    /// </summary>
    /// <param name="name">1–64 letters, digits, '.', '_', '-', starting with a letter or digit; unique among active operators.</param>
    /// <param name="publicKeyLine">An OpenSSH public key line: <c>type base64 [comment]</c>.</param>
    /// <param name="role">What the operator may do.</param>
    /// <param name="addedBy">Who adds it (recorded).</param>
    /// <param name="surface">Through which surface (recorded; the registry's own when null).</param>
    /// <exception cref="RegistryValidationException">A bad name or key line, a name taken, a key that is a client's or an active operator's.</exception>
    OperatorRecord AddOperator(string name, string publicKeyLine, OperatorRole role, string addedBy, string? surface = null);

    /// <summary>An active operator by name (any case) or key fingerprint; null when there is none.</summary>
    OperatorRecord? GetOperator(string nameOrFingerprint);

    /// <summary>The operator whose key has this fingerprint, active or removed (sshd must refuse a removed operator's key); null when none.</summary>
    OperatorRecord? FindOperatorKey(string fingerprint);

    /// <summary>Active operators by name; removed ones too when asked.</summary>
    IReadOnlyList<OperatorRecord> ListOperators(bool includeRemoved = false);

    /// <summary>Removes an active operator (a tombstone stays); refuses removing the last active admin.</summary>
    /// <exception cref="RegistryNotFoundException">No active operator has that name or fingerprint.</exception>
    /// <exception cref="RegistryValidationException">It is the last active admin.</exception>
    OperatorRecord RemoveOperator(string nameOrFingerprint, string by, string? surface = null);

    /// <summary>Changes an active operator's role; refuses demoting the last active admin.</summary>
    /// <exception cref="RegistryNotFoundException">No active operator has that name or fingerprint.</exception>
    /// <exception cref="RegistryValidationException">It would leave no active admin.</exception>
    OperatorRecord SetOperatorRole(string nameOrFingerprint, OperatorRole role, string by, string? surface = null);
}
