using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Settings: the registry's own named values (ISettingsStore).
public sealed partial class SqliteRegistry
{
    public string? GetSetting(string key)
    {
        using var c = Connect();
        return Scalar<string>(c, null, "SELECT value FROM settings WHERE key = @k", ("@k", key));
    }

    public void SetSetting(string key, string? value)
    {
        using var c = Connect();
        if (value is null)
        {
            Exec(c, null, "DELETE FROM settings WHERE key = @k", ("@k", key));
        }
        else
        {
            Exec(c, null, "INSERT INTO settings(key, value) VALUES (@k, @v) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                ("@k", key), ("@v", value));
        }
    }
}
