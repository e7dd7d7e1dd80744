using System.Management.Automation;
using System.Reflection;
using EtPhoneHome;
using EtPhoneHome.Core.Health;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Health;

/// <summary>Metadata of the health cmdlets, read as PowerShell's binder reads it (CustomAttributeData).</summary>
public sealed class HealthCmdletMetadataTests
{
    private static CustomAttributeData[] Attributes<T>(MemberInfo member) =>
        member.GetCustomAttributesData().Where(d => d.AttributeType == typeof(T)).ToArray();

    private static object? Named(CustomAttributeData data, string name) =>
        data.NamedArguments.FirstOrDefault(n => n.MemberName == name).TypedValue.Value;

    private static object?[] Args(CustomAttributeData data) =>
        data.ConstructorArguments.Select(a => a.Value is IReadOnlyCollection<CustomAttributeTypedArgument> items ? (object?)items.Select(i => i.Value).ToArray() : a.Value).ToArray();

    private static CustomAttributeData Parameter(Type type, string name) => Assert.Single(Attributes<ParameterAttribute>(type.GetProperty(name)!));

    [Fact]
    public void GetEphClientMetric_Metadata()
    {
        var type = typeof(GetEphClientMetricCommand);
        var cmdlet = Assert.Single(Attributes<CmdletAttribute>(type));
        Assert.Equal(["Get", "EphClientMetric"], Args(cmdlet));
        Assert.Equal("ClientId", Named(cmdlet, "DefaultParameterSetName"));
        Assert.Null(Named(cmdlet, "SupportsShouldProcess"));
        Assert.Equal(typeof(EphClientMetric), ((object?[])Args(Assert.Single(Attributes<OutputTypeAttribute>(type)))[0]!)[0]);
        Assert.True(typeof(EphAsyncCmdlet).IsAssignableFrom(type));

        var clientId = Parameter(type, "ClientId");
        Assert.Equal(("ClientId", 0, true, null), (Named(clientId, "ParameterSetName"), Named(clientId, "Position"), Named(clientId, "ValueFromPipelineByPropertyName"), Named(clientId, "Mandatory")));
        Assert.Equal(["Uuid", "Id"], (object?[])Args(Assert.Single(Attributes<AliasAttribute>(type.GetProperty("ClientId")!)))[0]!);
        Assert.Single(Attributes<SupportsWildcardsAttribute>(type.GetProperty("ClientId")!));

        var input = Parameter(type, "InputObject");
        Assert.Equal(("InputObject", true, true), (Named(input, "ParameterSetName"), Named(input, "ValueFromPipeline"), Named(input, "Mandatory")));
        Assert.Equal(typeof(EphClient[]), type.GetProperty("InputObject")!.PropertyType);

        Assert.Equal(typeof(SwitchParameter), type.GetProperty("Summary")!.PropertyType);
        Assert.Equal([1, 1024], Args(Assert.Single(Attributes<ValidateRangeAttribute>(type.GetProperty("ThrottleLimit")!))));
        Assert.Equal([1, 600], Args(Assert.Single(Attributes<ValidateRangeAttribute>(type.GetProperty("TimeoutSec")!))));
        var instance = new GetEphClientMetricCommand();
        Assert.Equal((32, 15), (instance.ThrottleLimit, instance.TimeoutSec));
    }

    [Fact]
    public void GetEphFleetStatus_Metadata()
    {
        var type = typeof(GetEphFleetStatusCommand);
        Assert.Equal(["Get", "EphFleetStatus"], Args(Assert.Single(Attributes<CmdletAttribute>(type))));
        Assert.Equal(typeof(EphFleetStatus), ((object?[])Args(Assert.Single(Attributes<OutputTypeAttribute>(type)))[0]!)[0]);
        foreach (var name in new[] { "CpuThreshold", "MemoryThreshold", "DiskThreshold" })
        {
            Parameter(type, name);
            Assert.Equal([0.0, 100.0], Args(Assert.Single(Attributes<ValidateRangeAttribute>(type.GetProperty(name)!))));
        }

        var instance = new GetEphFleetStatusCommand();
        Assert.Equal((80.0, 85.0, 85.0), (instance.CpuThreshold, instance.MemoryThreshold, instance.DiskThreshold));
    }

    [Fact]
    public void OutputTypes_AreImmutable_SecretFree_AndHaveFormatViews()
    {
        var types = new[] { typeof(EphClientMetric), typeof(EphDiskMetric), typeof(EphFleetStatus), typeof(EphFleetStatusEntry) };
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(root.FullName, "EtPhoneHome.sln")))
        {
            root = root.Parent!;
        }

        var viewed = System.Xml.Linq.XDocument.Load(Path.Combine(root.FullName, "module", "EtPhoneHome.format.ps1xml"))
            .Descendants("TypeName").Select(e => e.Value).ToHashSet();
        foreach (var type in types)
        {
            Assert.True(type.IsSealed && type.IsPublic);
            Assert.All(type.GetProperties(), p => Assert.Null(p.SetMethod));
            Assert.DoesNotContain(type.GetProperties(), p => p.Name.Contains("Secret", StringComparison.OrdinalIgnoreCase));
            Assert.Contains(type.FullName!, viewed);
        }

        Assert.Equal(typeof(TimeSpan?), typeof(EphClientMetric).GetProperty("Uptime")!.PropertyType);
        Assert.NotNull(typeof(EphClientMetric).GetProperty("PSComputerName"));
        Assert.NotNull(typeof(EphFleetStatusEntry).GetProperty("Id"));
    }

    [Fact]
    public void MetricStatusEnum_MirrorsCore()
    {
        Assert.Equal(Enum.GetNames<MetricsStatus>(), Enum.GetNames<EphMetricStatus>());
        Assert.All(Enum.GetValues<MetricsStatus>(), s => Assert.Equal(s.ToString(), ((EphMetricStatus)(int)s).ToString()));
    }

    [Fact]
    public void EphClientMetric_CarriesTheFiguresAndTheUptimeAsATimeSpan()
    {
        var metric = (EphClientMetric)Activator.CreateInstance(typeof(EphClientMetric), BindingFlags.NonPublic | BindingFlags.Instance, null,
            [new ClientMetricsResult
            {
                Uuid = "u-1",
                DisplayName = "web-01",
                Status = MetricsStatus.Succeeded,
                DurationMs = 250,
                Metrics = new EtPhoneHome.Protocol.MetricsResult
                {
                    CpuPercent = 12.5,
                    UptimeS = 90061,
                    Disks = [new() { Mount = "/", TotalBytes = 10, FreeBytes = 4, Percent = 60 }],
                    Network = new() { RxBytes = 1, TxBytes = 2 },
                },
            }], null)!;

        Assert.Equal(("u-1", "web-01", EphMetricStatus.Succeeded, 12.5), (metric.ClientId, metric.PSComputerName, metric.Status, metric.CpuPercent));
        Assert.Equal(new TimeSpan(1, 1, 1, 1), metric.Uptime);
        Assert.Equal(TimeSpan.FromMilliseconds(250), metric.Duration);
        Assert.Equal("/", Assert.Single(metric.Disks).Mount);
        Assert.Equal((1L, 2L), (metric.NetworkRxBytes!.Value, metric.NetworkTxBytes!.Value));
    }
}
