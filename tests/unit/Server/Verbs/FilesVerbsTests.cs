using EtPhoneHome.Server;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

public sealed class FilesVerbsTests
{
    [Theory]
    [InlineData("read --client web-1 /etc/hosts --json")]
    [InlineData("write --tag web /etc/motd --value hello --mode 644")]
    [InlineData("ls --all /var/log -r --max-entries 50")]
    [InlineData("upload --client web-1 ./app.tgz /opt/app/ --throttle 8")]
    [InlineData("download --client web-1 /var/log/syslog ./logs")]
    [InlineData("exec --client web-1 --env A=1 --env B=2 --shell bash --cwd /tmp --max-errors 10% -- true")]
    public void Verbs_Parse(string line)
    {
        Assert.Empty(Program.BuildRoot().Parse(line).Errors);
    }

    [Theory]
    [InlineData("read /etc/hosts", "exactly one of --all, --client or --tag")]
    [InlineData("write --client a /x", "exactly one of --value or --from-file")]
    [InlineData("write --client a /x --value v --from-file f", "exactly one of --value or --from-file")]
    [InlineData("upload --client a --throttle 0 ./a /b", "--throttle must be between 1 and 1024")]
    [InlineData("exec --client a --env NOEQUALS -- true", "NAME=VALUE")]
    [InlineData("exec --client a --shell zsh -- true", "zsh")]
    public void Verbs_RejectBadInvocations_NamingTheProblem(string line, string expected)
    {
        var errors = Program.BuildRoot().Parse(line).Errors;
        Assert.Contains(errors, e => e.Message.Contains(expected, StringComparison.Ordinal));
    }
}
