using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome;

/// <summary>What an operator key may do through the hub's operator service (mirrors Core's OperatorRole value for value).</summary>
public enum EphOperatorRole
{
    /// <summary>Reads the fleet; runs nothing and changes nothing.</summary>
    Reader = OperatorRole.Reader,
    /// <summary>Runs commands, writes files, changes clients.</summary>
    Operator = OperatorRole.Operator,
    /// <summary>Everything, including key decisions and managing operators.</summary>
    Admin = OperatorRole.Admin,
}

/// <summary>An operator: a person's SSH key with a name and a role, as Get-EphOperator writes it. Immutable.</summary>
public sealed class EphOperator
{
    internal EphOperator(OperatorRecord op)
    {
        Name = op.Name;
        Role = (EphOperatorRole)(int)op.Role;
        Fingerprint = op.Fingerprint;
        KeyType = op.KeyType;
        AddedAt = op.AddedAt;
        AddedBy = UntrustedText.ForTerminal(op.AddedBy) ?? "";
        Removed = op.Removed;
        RemovedAt = op.RemovedAt;
    }

    /// <summary>The operator's name; binds to -Name of the other operator cmdlets from the pipeline.</summary>
    public string Name { get; }
    public EphOperatorRole Role { get; }
    /// <summary>The key's SHA256 fingerprint, as ssh-keygen -l prints it.</summary>
    public string Fingerprint { get; }
    public string KeyType { get; }
    public DateTimeOffset AddedAt { get; }
    public string AddedBy { get; }
    /// <summary>True for a removed operator (listed with -IncludeRemoved); sshd refuses its key.</summary>
    public bool Removed { get; }
    public DateTimeOffset? RemovedAt { get; }

    public override string ToString() => Name;
}
