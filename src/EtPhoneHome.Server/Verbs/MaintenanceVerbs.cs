using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Server.Verbs;

/// <summary>backup, restore and check of the registry.</summary>
internal static class MaintenanceVerbs
{
    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(BackupCommand());
        root.Subcommands.Add(RestoreCommand());
        root.Subcommands.Add(CheckCommand());
    }

    private static Command BackupCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var to = new Option<string>("--to") { Description = "File to write the backup to (mode 0600).", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace the file when it exists." };
        var cmd = new Command("backup", "Copy the registry while the hub runs (SQLite online backup), then check the copy. A PostgreSQL registry is backed up with pg_dump.") { data, to, force, json };
        cmd.SetAction(pr => Run(pr, "backup", () =>
        {
            var dir = CommonOptions.ResolveData(pr, data);
            return RegistryMaintenance.Backup(dir, RegistrySource.Resolve(dir, EphConfiguration.Registry), pr.GetValue(to)!, pr.GetValue(force));
        }, pr.GetValue(json)));
        return cmd;
    }

    private static Command RestoreCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var from = new Option<string>("--from") { Description = "The backup file to put in place of the registry.", Required = true };
        var yes = new Option<bool>("--yes") { Description = "Do it (without --yes the backup is only checked and what would happen is printed)." };
        var cmd = new Command("restore", "Put a backup in place of the registry (the hub must be stopped; the replaced file is kept beside it).") { data, from, yes, json };
        cmd.SetAction(pr =>
        {
            var dir = CommonOptions.ResolveData(pr, data);
            if (!pr.GetValue(yes))
            {
                return Run(pr, "restore", () =>
                {
                    if (RegistrySource.Resolve(dir, EphConfiguration.Registry).IsPostgres)
                    {
                        // The same refusal --yes would give, before anything is read.
                        return RegistryMaintenance.Restore(dir, RegistrySource.Resolve(dir, EphConfiguration.Registry), pr.GetValue(from)!, _ => true);
                    }

                    var report = RegistryMaintenance.Check(pr.GetValue(from)!);
                    pr.InvocationConfiguration.Output.WriteLine(
                        $"would replace {dir.RegistryFile} with {report.File} ({(report.Ok ? "sound" : "NOT sound")}); add --yes to do it");
                    return report;
                }, pr.GetValue(json));
            }

            return Run(pr, "restore", () => RegistryMaintenance.Restore(dir, RegistrySource.Resolve(dir, EphConfiguration.Registry), pr.GetValue(from)!, HubPresence.IsRunning), pr.GetValue(json));
        });
        return cmd;
    }

    private static Command CheckCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var file = new Option<string?>("--file") { Description = "Check this file (a backup) instead of the data directory's registry." };
        var cmd = new Command("check", "Read every page of the registry (SQLite), or check that a PostgreSQL registry answers with a schema this build understands; report damage; exit 1 when something is wrong.") { data, file, json };
        cmd.SetAction(pr => Run(pr, "check", () =>
        {
            if (pr.GetValue(file) is { } backup)
            {
                return RegistryMaintenance.Check(backup);
            }

            var dir = CommonOptions.ResolveData(pr, data);
            var registry = RegistrySource.Resolve(dir, EphConfiguration.Registry);
            return registry.IsPostgres ? RegistryMaintenance.Check(registry) : RegistryMaintenance.Check(dir.RegistryFile);
        }, pr.GetValue(json)));
        return cmd;
    }

    private static int Run(ParseResult pr, string verb, Func<RegistryCheckReport> action, bool json)
    {
        var output = pr.InvocationConfiguration.Output;
        var error = pr.InvocationConfiguration.Error;
        RegistryCheckReport report;
        try
        {
            report = action();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
        {
            error.WriteLine($"eph-server {verb}: {ex.Message}");
            return 1;
        }

        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new
            {
                file = report.File,
                ok = report.Ok,
                schema_version = report.SchemaVersion,
                size_bytes = report.SizeBytes,
                clients = report.Clients,
                keys = report.Keys,
                problems = report.Problems,
            }));
        }
        else
        {
            output.WriteLine($"{verb}: {report.File}: {(report.Ok ? "ok" : "DAMAGED")}, schema {report.SchemaVersion}, {report.Clients} client(s), {report.Keys} key(s), {report.SizeBytes} bytes");
            foreach (var problem in report.Problems)
            {
                output.WriteLine("  " + problem);
            }
        }

        return report.Ok ? 0 : 1;
    }
}
