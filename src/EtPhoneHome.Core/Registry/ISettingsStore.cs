namespace EtPhoneHome.Core.Registry;

/// <summary>The registry's own settings (heartbeat, rate-limit mode, tunnel range, webhook defaults…), by name.</summary>
public interface ISettingsStore
{
    string? GetSetting(string key);

    void SetSetting(string key, string? value);
}
