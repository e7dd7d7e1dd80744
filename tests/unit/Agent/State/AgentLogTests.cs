using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

/// <summary>The agent aborted (exit 134) when its log could not be written; logging must never take it down.</summary>
public sealed class AgentLogTests
{
    private sealed class FullDiskWriter : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void Write(char value) => throw new IOException("No space left on device");

        public override void WriteLine(string? value) => throw new IOException("No space left on device");
    }

    [Fact]
    public void AnUnwritableLog_DropsLines_AndTheNextWritableLineSaysHowMany()
    {
        var saved = AgentLog.Output;
        var healthy = new StringWriter();
        try
        {
            AgentLog.Output = () => new FullDiskWriter();
            var ex = Record.Exception(() =>
            {
                AgentLog.Error("first line that cannot be written");
                AgentLog.Warn("second line that cannot be written");
            });
            Assert.Null(ex);
            Assert.True(AgentLog.Dropped >= 2);

            AgentLog.Output = () => healthy;
            AgentLog.Info("written again");
        }
        finally
        {
            AgentLog.Output = saved;
        }

        var text = healthy.ToString();
        Assert.Contains("log line(s) could not be written and were dropped", text);
        Assert.Contains("written again", text);
        Assert.True(text.IndexOf("dropped", StringComparison.Ordinal) < text.IndexOf("written again", StringComparison.Ordinal));
    }
}
