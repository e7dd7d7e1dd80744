using System.Reflection;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using ModelContextProtocol.Server;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

public sealed class OperationVocabularyTests
{
    [Theory]
    [InlineData(OperationStatus.Succeeded, "succeeded")]
    [InlineData(OperationStatus.TimedOut, "timed_out")]
    [InlineData(OperationStatus.RateLimited, "rate_limited")]
    [InlineData(OperationStatus.NotFound, "not_found")]
    public void AStatus_HasOneWireSpelling_AndReadsBackFromEither(OperationStatus status, string wire)
    {
        Assert.Equal(wire, OperationNames.Wire(status));
        Assert.Equal(status, OperationNames.ParseStatus(wire));
        Assert.Equal(status, OperationNames.ParseStatus(status.ToString()));
        Assert.Equal(status, OperationNames.ParseStatus(wire.ToUpperInvariant()));
    }

    [Fact]
    public void CommandStatuses_AreTheFirstOperationStatuses_ValueForValue()
    {
        foreach (var status in Enum.GetValues<CommandStatus>())
        {
            Assert.Equal(status.ToString(), ((OperationStatus)(int)status).ToString());
            Assert.Equal(OperationNames.Wire((OperationStatus)(int)status), OperationNames.Wire(status));
        }
    }

    [Theory]
    [InlineData("ok")]
    [InlineData("sucess")]
    [InlineData("1")]
    [InlineData("")]
    public void AWordThatIsNoStatus_IsRefusedByTheHistoryFilter_NamingTheValidOnes(string text)
    {
        Assert.Null(OperationNames.ParseStatus(text));
        var ex = Assert.Throws<RegistryValidationException>(() => HistoryFilters.Statuses([text]));
        Assert.Contains("timed_out", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HistoryOperations_AreRecordedAsWritten_AndATypoIsRefused()
    {
        Assert.Equal(["run_command", "accept_key"], HistoryFilters.Operations(["RUN_COMMAND", "accept_key", "Run_Command"]));
        var ex = Assert.Throws<RegistryValidationException>(() => HistoryFilters.Operations(["command"]));
        Assert.Contains("run_command", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HistoryOperations_AreTheDocumentedMcpToolNames_WhereAToolDoesTheOperation()
    {
        var tools = typeof(EtPhoneHome.Mcp.EphMcpServer).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance))
            .Select(m => m.GetCustomAttribute<McpServerToolAttribute>()?.Name)
            .OfType<string>()
            .ToHashSet(StringComparer.Ordinal);
        string[] withoutTool = [OperationNames.ExchangeInit, OperationNames.RevokeKey, OperationNames.PurgeKeys, OperationNames.RemoveClient, OperationNames.ResendWebhook,
            OperationNames.AddOperator, OperationNames.RemoveOperator, OperationNames.SetOperatorRole];
        foreach (var operation in OperationNames.Operations.Except(withoutTool))
        {
            Assert.Contains(operation, tools);
        }

        var docs = File.ReadAllText(Path.Combine(EtPhoneHome.Tests.Unit.Module.BuiltModule.RepoRoot, "docs", "mcp.md"));
        foreach (var operation in OperationNames.Operations.Except(withoutTool))
        {
            Assert.Contains($"`{operation}`", docs, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Completion_OffersTheHistoryOperationsByPrefix()
    {
        Assert.Equal(["exchange_delete", "exchange_download"], FleetCompletions.HistoryOperations("exchange_d").Select(c => c.Text));
        Assert.Equal(OperationNames.Operations.Count, FleetCompletions.HistoryOperations("").Count);
    }
}
