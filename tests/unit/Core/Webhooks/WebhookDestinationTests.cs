using System.Net;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Webhooks;

/// <summary>Where webhooks may go, and how their URLs are shown.</summary>
public sealed class WebhookDestinationTests
{
    [Theory]
    [InlineData("169.254.169.254", true)]
    [InlineData("169.254.1.1", true)]
    [InlineData("100.100.100.200", true)]
    [InlineData("fe80::1", true)]
    [InlineData("fd00:ec2::254", true)]
    [InlineData("::ffff:169.254.169.254", true)]
    [InlineData("127.0.0.1", false)]
    [InlineData("10.1.2.3", false)]
    [InlineData("93.184.216.34", false)]
    [InlineData("::1", false)]
    public void LinkLocalAndMetadataAddresses_AreRecognised(string address, bool expected) =>
        Assert.Equal(expected, WebhookSender.IsLinkLocalOrMetadata(IPAddress.Parse(address)));

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    [InlineData("http://[fe80::1]:8080/hook")]
    public async Task AMetadataDestination_IsRefusedBeforeAnyConnection(string url)
    {
        using var sender = new WebhookSender(TimeSpan.FromSeconds(2));

        var result = await sender.SendAsync(url, "secret-0123456789", "client.pending", "d-1", "{}", CancellationToken.None);

        Assert.False(result.Success);
        Assert.Null(result.StatusCode);
        Assert.Contains("link-local or cloud metadata", result.Error);
        Assert.Contains(WebhookOptions.AllowLinkLocalVariable, result.Error);
    }

    [Fact]
    public void TheOptIn_IsReadFromTheEnvironment() =>
        Assert.True(WebhookOptions.FromEnvironment(n => n == WebhookOptions.AllowLinkLocalVariable ? "1" : null).AllowLinkLocal);

    [Fact]
    public void AWebhookUrlWithCredentials_IsShownRedacted_InClientRows()
    {
        using var temp = new TempData();
        using var registry = SqliteRegistry.Open(temp.Dir);
        var client = Keys.Admit(registry, Keys.A, Keys.Identity(name: "web-01"));
        registry.UpdateClient(client.Uuid, new ClientUpdate { WebhookUrl = "https://user:hunter2@hooks.example/x?token=s3cret" }, "t");

        var row = JsonSerializer.Serialize(ClientRow.From(registry.GetClient(client.Uuid)!));

        Assert.DoesNotContain("hunter2", row);
        Assert.DoesNotContain("s3cret", row);
        Assert.Contains("hooks.example", row);
    }
}
