using System.Management.Automation;
using System.Reflection;
using EtPhoneHome;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>Metadata of the webhook and rate-limit cmdlets, read as PowerShell's binder reads it.</summary>
public sealed class WebhookCmdletMetadataTests
{
    private static CustomAttributeData Single<T>(MemberInfo member) =>
        Assert.Single(member.GetCustomAttributesData(), d => d.AttributeType == typeof(T));

    private static T Named<T>(CustomAttributeData data, string name, T fallback) =>
        data.NamedArguments.Where(n => n.MemberName == name).Select(n => (T)n.TypedValue.Value!).DefaultIfEmpty(fallback).First();

    private static string[] Aliases(Type type, string property) =>
        ((IReadOnlyCollection<CustomAttributeTypedArgument>)Single<AliasAttribute>(type.GetProperty(property)!).ConstructorArguments[0].Value!)
            .Select(a => (string)a.Value!).ToArray();

    private static CustomAttributeData Parameter(Type type, string property) => Single<ParameterAttribute>(type.GetProperty(property)!);

    private static Type OutputType(Type type) =>
        ((IReadOnlyCollection<CustomAttributeTypedArgument>)Single<OutputTypeAttribute>(type).ConstructorArguments[0].Value!).Select(a => (Type)a.Value!).Single();

    [Fact]
    public void GetEphWebhookDelivery_FiltersByClientFromThePipeline_EventStatusAndLimit()
    {
        var type = typeof(GetEphWebhookDeliveryCommand);
        Assert.Equal(["Get", "EphWebhookDelivery"], Single<CmdletAttribute>(type).ConstructorArguments.Select(a => a.Value));
        Assert.Equal(typeof(EphWebhookDelivery), OutputType(type));
        Assert.True(Named(Parameter(type, "ClientId"), "ValueFromPipelineByPropertyName", false));
        Assert.Equal(["Uuid", "Id"], Aliases(type, "ClientId"));
        Assert.Equal(typeof(EphWebhookDeliveryStatus?), type.GetProperty("Status")!.PropertyType);
        Assert.Equal([1, 10000], Single<ValidateRangeAttribute>(type.GetProperty("First")!).ConstructorArguments.Select(a => a.Value));
        Assert.Equal(100, new GetEphWebhookDeliveryCommand().First);
    }

    [Fact]
    public void SendEphWebhookDelivery_BindsDeliveryIdFromTheOutput_AndSupportsShouldProcess()
    {
        var type = typeof(SendEphWebhookDeliveryCommand);
        var cmdlet = Single<CmdletAttribute>(type);
        Assert.Equal(["Send", "EphWebhookDelivery"], cmdlet.ConstructorArguments.Select(a => a.Value));
        Assert.True(Named(cmdlet, "SupportsShouldProcess", false));
        Assert.Equal((int)ConfirmImpact.Medium, Named(cmdlet, "ConfirmImpact", -1));
        var id = Parameter(type, "DeliveryId");
        Assert.True(Named(id, "Mandatory", false));
        Assert.True(Named(id, "ValueFromPipelineByPropertyName", false));
        Assert.NotNull(typeof(EphWebhookDelivery).GetProperty("DeliveryId"));
        Assert.Equal(typeof(SwitchParameter), type.GetProperty("PassThru")!.PropertyType);
    }

    [Fact]
    public void TestEphWebhook_TakesAUrlOrAClientFromThePipeline_AndSupportsShouldProcess()
    {
        var type = typeof(TestEphWebhookCommand);
        var cmdlet = Single<CmdletAttribute>(type);
        Assert.Equal(["Test", "EphWebhook"], cmdlet.ConstructorArguments.Select(a => a.Value));
        Assert.True(Named(cmdlet, "SupportsShouldProcess", false));
        Assert.Equal(typeof(EphWebhookTestResult), OutputType(type));
        Assert.Equal(0, Named(Parameter(type, "Url"), "Position", -1));
        Assert.True(Named(Parameter(type, "ClientId"), "ValueFromPipelineByPropertyName", false));
        Assert.Equal(["Uuid", "Id"], Aliases(type, "ClientId"));
    }

    [Fact]
    public void GetEphRateLimitStats_TakesClientsFromThePipeline_AndMirrorsTheReferenceFields()
    {
        var type = typeof(GetEphRateLimitStatsCommand);
        Assert.Equal(["Get", "EphRateLimitStats"], Single<CmdletAttribute>(type).ConstructorArguments.Select(a => a.Value));
        Assert.Equal(typeof(EphRateLimitStats), OutputType(type));
        Assert.True(Named(Parameter(type, "ClientId"), "ValueFromPipelineByPropertyName", false));
        Assert.Equal(["Uuid", "Id"], Aliases(type, "ClientId"));
        foreach (var name in new[] { "RequestsPerMinute", "CurrentConcurrent", "RpmLimit", "ConcurrentLimit", "RpmWarnings", "ConcurrentWarnings", "Mode" })
        {
            Assert.NotNull(typeof(EphRateLimitStats).GetProperty(name));
        }
    }

    [Fact]
    public void OutputTypes_AreImmutable_CarryNoSecret_AndHaveATableView()
    {
        var format = System.Xml.Linq.XDocument.Load(Path.Combine(RepoRoot(), "module", "EtPhoneHome.format.ps1xml"));
        var viewed = format.Descendants("TypeName").Select(e => e.Value).ToHashSet();
        foreach (var type in new[] { typeof(EphWebhookDelivery), typeof(EphWebhookAttempt), typeof(EphWebhookTestResult), typeof(EphRateLimitStats) })
        {
            Assert.True(type.IsSealed);
            Assert.All(type.GetProperties(), p => Assert.Null(p.SetMethod));
            Assert.DoesNotContain(type.GetProperties(), p => p.Name.Contains("Secret", StringComparison.OrdinalIgnoreCase));
            if (type != typeof(EphWebhookAttempt))
            {
                Assert.Contains(type.FullName!, viewed);
            }
        }
    }

    [Fact]
    public void Enums_MirrorCore()
    {
        Assert.Equal(Enum.GetNames<WebhookDeliveryStatus>(), Enum.GetNames<EphWebhookDeliveryStatus>());
        Assert.Equal(Enum.GetNames<RateLimitMode>(), Enum.GetNames<EphRateLimitMode>());
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EtPhoneHome.sln")))
        {
            dir = dir.Parent;
        }

        return dir!.FullName;
    }
}
