namespace EtPhoneHome.Core.Registry;

public enum OperatorRole { Reader = 0, Operator = 1, Admin = 2 }

public static class OperatorRoles
{
    public static string Wire(OperatorRole role) => role switch { OperatorRole.Reader => "reader", OperatorRole.Operator => "operator", _ => "admin" };
}
