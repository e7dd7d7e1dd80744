using System.Management.Automation;
using System.Reflection;
using EtPhoneHome;
using EtPhoneHome.Core.Exchange;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>Metadata of the exchange cmdlets, read as PowerShell's binder reads it (CustomAttributeData).</summary>
public sealed class ExchangeCmdletMetadataTests
{
    private static CustomAttributeData One<T>(MemberInfo member) => Assert.Single(member.GetCustomAttributesData(), d => d.AttributeType == typeof(T));

    private static object? Named(CustomAttributeData data, string name) => data.NamedArguments.FirstOrDefault(n => n.MemberName == name).TypedValue.Value;

    private static IEnumerable<CustomAttributeData> ParameterAttributes(Type type, string property) =>
        type.GetProperty(property)!.GetCustomAttributesData().Where(d => d.AttributeType == typeof(ParameterAttribute));

    [Theory]
    [InlineData(typeof(SendEphExchangeFileCommand), "Medium")]
    [InlineData(typeof(ReceiveEphExchangeFileCommand), "Low")]
    [InlineData(typeof(RemoveEphExchangeFileCommand), "High")]
    [InlineData(typeof(InitializeEphExchangeCommand), "Medium")]
    public void StateChangingCmdlets_SupportShouldProcess(Type type, string impact)
    {
        var cmdlet = One<CmdletAttribute>(type);

        Assert.Equal(true, Named(cmdlet, "SupportsShouldProcess"));
        Assert.Equal(impact, ((ConfirmImpact)(int)Named(cmdlet, "ConfirmImpact")!).ToString());
    }

    [Fact]
    public void RemoveEphExchangeFile_BindsTransferIdAndSourceClientFromGetEphExchangeFileObjects()
    {
        foreach (var property in new[] { "TransferId", "SourceClient" })
        {
            var parameter = Assert.Single(ParameterAttributes(typeof(RemoveEphExchangeFileCommand), property));
            Assert.Equal(true, Named(parameter, "ValueFromPipelineByPropertyName"));
            Assert.Equal(true, Named(parameter, "Mandatory"));
            Assert.NotNull(typeof(EphExchangeFile).GetProperty(property));
        }
    }

    [Theory]
    [InlineData(typeof(SendEphExchangeFileCommand))]
    [InlineData(typeof(NewEphExchangeUploadUrlCommand))]
    public void ExpiresHours_IsLimitedToOneThroughTwelve(Type type)
    {
        var range = One<ValidateRangeAttribute>(type.GetProperty("ExpiresHours")!);

        Assert.Equal(ExchangeLimits.MinExpiresHours, range.ConstructorArguments[0].Value);
        Assert.Equal(ExchangeLimits.MaxExpiresHours, range.ConstructorArguments[1].Value);
        Assert.Equal(12, ExchangeLimits.MaxExpiresHours);
    }

    [Fact]
    public void SendEphExchangeFile_TakesClientsFromThePipeline()
    {
        var parameter = Assert.Single(ParameterAttributes(typeof(SendEphExchangeFileCommand), "DestinationClient"));
        var aliases = (IReadOnlyCollection<CustomAttributeTypedArgument>)One<AliasAttribute>(typeof(SendEphExchangeFileCommand).GetProperty("DestinationClient")!).ConstructorArguments[0].Value!;

        Assert.Equal(true, Named(parameter, "ValueFromPipelineByPropertyName"));
        Assert.Contains("Id", aliases.Select(a => (string)a.Value!));
    }

    [Fact]
    public void ExchangeOutputTypes_AreImmutable_CarryNoCredentials_AndHaveFormatViews()
    {
        var types = new[] { typeof(EphExchangeTransfer), typeof(EphExchangeDelivery), typeof(EphExchangeDownload), typeof(EphExchangeFile), typeof(EphExchangeRemoval), typeof(EphExchangeUploadUrl), typeof(EphExchangeLifecycleRule) };
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(root.FullName, "EtPhoneHome.sln")))
        {
            root = root.Parent!;
        }

        var viewed = System.Xml.Linq.XDocument.Load(Path.Combine(root.FullName, "module", "EtPhoneHome.format.ps1xml")).Descendants("TypeName").Select(e => e.Value).ToHashSet();
        foreach (var type in types)
        {
            Assert.True(type.IsSealed);
            Assert.All(type.GetProperties(), p => Assert.Null(p.SetMethod));
            Assert.DoesNotContain(type.GetProperties(), p => p.Name.Contains("Secret", StringComparison.OrdinalIgnoreCase) || p.Name.Contains("AccessKey", StringComparison.OrdinalIgnoreCase));
            Assert.Contains(type.FullName!, viewed);
        }
    }

    [Fact]
    public void ExchangeErrorIds_AreStable()
    {
        Assert.Equal("ExchangeNotConfigured", Strings.ExchangeNotConfiguredId);
        Assert.Equal("ExchangeHostNotAllowed", Strings.ExchangeHostNotAllowedId);
        Assert.Equal("ExchangeChecksumMismatch", Strings.ExchangeChecksumMismatchId);
    }

    [Fact]
    public void NoPublicCmdletSignature_ExposesAwsTypes()
    {
        var assembly = typeof(SendEphExchangeFileCommand).Assembly;
        var exposed = assembly.GetExportedTypes()
            .SelectMany(t => t.GetProperties().Select(p => p.PropertyType).Concat(t.GetMethods().SelectMany(m => m.GetParameters().Select(p => p.ParameterType).Append(m.ReturnType))));

        Assert.DoesNotContain(exposed, t => t.Namespace?.StartsWith("Amazon", StringComparison.Ordinal) == true);
    }

    [Fact]
    public void WhatABucketOrAServerSays_ReachesTheTerminal_WithoutItsControlCharacters()
    {
        // Keys and metadata are written by whoever held an upload URL; a server connection supplies the rest.
        var listed = new EphExchangeFile(new EtPhoneHome.Core.Exchange.ExchangeObject("transfers/server/x\u001b]0;owned\u0007", "x\u001b[2J", "server", 5, null,
            new Dictionary<string, string> { ["filename"] = "\u001b[31mred", ["dest_client"] = "d\u009b1m", ["note\u001b"] = "v\r\nw" }));
        var texts = new[] { listed.Key, listed.TransferId, listed.FileName!, listed.DestinationClient! }
            .Concat(listed.Metadata.Keys.Cast<string>()).Concat(listed.Metadata.Values.Cast<string>());

        foreach (var text in texts)
        {
            Assert.DoesNotContain(text, char.IsControl);
        }

        Assert.Contains("red", listed.FileName, StringComparison.Ordinal);
    }
}
