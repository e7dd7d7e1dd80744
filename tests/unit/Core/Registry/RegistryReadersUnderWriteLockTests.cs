using System.Diagnostics;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Microsoft.Data.Sqlite;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// A process that only reads (each `eph-server clients`, `keys`, `status` on the server host) opens the registry while
/// the hub writes: during a reconnect storm admissions hold the write lock back to back. Opening an up-to-date
/// registry and searching it must not wait for that lock (SQLite's WAL lets readers through).
/// </summary>
public sealed class RegistryReadersUnderWriteLockTests : IDisposable
{
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task OpenAndSearch_WhileAnotherConnectionHoldsTheWriteLock_AnswersWithoutWaitingForIt()
    {
        using (var setup = SqliteRegistry.Open(_temp.Dir))
        {
            Keys.Admit(setup, Keys.A, Keys.Identity(name: "web-01"));
        }

        SqliteConnection.ClearAllPools();
        using var writer = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _temp.Dir.RegistryFile, Pooling = false }.ToString());
        writer.Open();
        using var held = writer.BeginTransaction(deferred: false); // BEGIN IMMEDIATE: the write lock, as an admission holds it
        try
        {
            var clock = Stopwatch.StartNew();
            var search = Task.Run(() =>
            {
                using var reader = SqliteRegistry.Open(_temp.Dir);
                return ClientQueries.Search(reader, new ClientQuery { Names = ["web-*"] }).Clients.Select(c => c.DisplayName).ToList();
            });
            var finished = await Task.WhenAny(search, Task.Delay(TimeSpan.FromSeconds(3)));
            Assert.True(finished == search, $"open + search still waiting after {clock.Elapsed.TotalSeconds:0.0} s behind a writer");
            Assert.Equal(["web-01"], await search);
        }
        finally
        {
            held.Rollback();
        }
    }
}
