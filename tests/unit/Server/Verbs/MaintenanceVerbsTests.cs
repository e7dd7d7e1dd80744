using System.CommandLine;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

public sealed class MaintenanceVerbsTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public MaintenanceVerbsTests()
    {
        using var registry = SqliteRegistry.Open(_data.Dir);
        Keys.Admit(registry, Keys.A, Keys.Identity(name: "web-01"));
    }

    public void Dispose() => _data.Dispose();

    private string Root(string name) => Path.Combine(_data.Root, name);

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot().Parse([.. args, "--data", _data.Dir.Path]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    [Fact]
    public async Task BackupCheckRestore_FromTheCommandLine()
    {
        Assert.Equal(0, await RunAsync("backup", "--to", Root("b.db")));
        Assert.Contains("ok", _out.ToString());
        Assert.Equal(0, await RunAsync("check"));
        Assert.Equal(0, await RunAsync("check", "--file", Root("b.db"), "--json"));
        Assert.Contains("\"ok\":true", _out.ToString());

        // Without --yes: checked and described, nothing replaced.
        Assert.Equal(0, await RunAsync("restore", "--from", Root("b.db")));
        Assert.Contains("would replace", _out.ToString());
        Assert.Empty(Directory.GetFiles(_data.Dir.Path, "registry.db.replaced-*"));

        // A running hub (it holds hub.lock) refuses the restore.
        using (new FileStream(_data.Dir.HubLockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            Assert.Equal(1, await RunAsync("restore", "--from", Root("b.db"), "--yes"));
            Assert.Contains("a hub is running", _err.ToString());
        }

        Assert.Equal(0, await RunAsync("restore", "--from", Root("b.db"), "--yes"));
        Assert.Single(Directory.GetFiles(_data.Dir.Path, "registry.db.replaced-*"));
    }

    [Fact]
    public async Task CheckOfAFileThatIsNoRegistry_ExitsOne_WithoutAStackTrace()
    {
        File.WriteAllText(Root("junk.db"), new string('j', 5000));

        Assert.Equal(1, await RunAsync("check", "--file", Root("junk.db")));
        Assert.Contains("DAMAGED", _out.ToString());
        Assert.DoesNotContain("   at ", _out.ToString() + _err.ToString());
    }
}
