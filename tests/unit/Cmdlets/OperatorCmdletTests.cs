using System.Management.Automation;
using System.Reflection;
using EtPhoneHome;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>The operator cmdlets as PowerShell's binder sees them, and their output type.</summary>
public sealed class OperatorCmdletTests
{
    private static CustomAttributeData[] Data<T>(MemberInfo member) =>
        member.GetCustomAttributesData().Where(d => d.AttributeType == typeof(T)).ToArray();

    private static object? Named(CustomAttributeData d, string name) =>
        d.NamedArguments.Where(n => n.MemberName == name).Select(n => n.TypedValue.Value).FirstOrDefault();

    [Theory]
    [InlineData(typeof(AddEphOperatorCommand), "Add", (int)ConfirmImpact.Medium)]
    [InlineData(typeof(SetEphOperatorCommand), "Set", (int)ConfirmImpact.Medium)]
    [InlineData(typeof(RemoveEphOperatorCommand), "Remove", (int)ConfirmImpact.High)]
    public void ChangingCmdlets_SupportShouldProcess_WithTheirImpact_AndWriteOperators(Type type, string verb, int impact)
    {
        var cmdlet = Assert.Single(Data<CmdletAttribute>(type));
        Assert.Equal([verb, "EphOperator"], cmdlet.ConstructorArguments.Select(a => a.Value));
        Assert.Equal(true, Named(cmdlet, "SupportsShouldProcess"));
        Assert.Equal(impact, Named(cmdlet, "ConfirmImpact"));
        Assert.Contains(typeof(EphOperator), Data<OutputTypeAttribute>(type)
            .SelectMany(d => (IReadOnlyCollection<CustomAttributeTypedArgument>)d.ConstructorArguments[0].Value!).Select(a => (Type)a.Value!));
    }

    [Fact]
    public void AddEphOperator_TakesTheKeyAsTextOrAsAFile_NeverBoth_AndARequiredRole()
    {
        var sets = typeof(AddEphOperatorCommand).GetProperties()
            .SelectMany(p => Data<ParameterAttribute>(p).Select(a => (p.Name, Set: (string?)Named(a, "ParameterSetName"), Mandatory: (bool?)Named(a, "Mandatory"))))
            .ToList();
        Assert.Contains(("PublicKey", "PublicKey", true), sets);
        Assert.Contains(("PublicKeyPath", "PublicKeyPath", true), sets);
        Assert.Contains(("Role", null, true), sets);
        Assert.Equal(typeof(EphOperatorRole), typeof(AddEphOperatorCommand).GetProperty("Role")!.PropertyType);
    }

    [Fact]
    public void EphOperatorRole_MirrorsTheRegistrysRoles_ValueForValue()
    {
        Assert.Equal(Enum.GetNames<OperatorRole>(), Enum.GetNames<EphOperatorRole>());
        Assert.Equal(Enum.GetValues<OperatorRole>().Select(v => (int)v), Enum.GetValues<EphOperatorRole>().Select(v => (int)v));
    }
}
