using System.Globalization;

namespace EtPhoneHome.Core.Text;

/// <summary>Ages (durations) as people read them.</summary>
public static class Ages
{
    /// <summary>An age for people, in its largest whole unit, to two decimals (7d, 1.5d, 12h, 90s).</summary>
    public static string Describe(TimeSpan age) =>
        age >= TimeSpan.FromDays(1) ? age.TotalDays.ToString("0.##", CultureInfo.InvariantCulture) + "d"
        : age >= TimeSpan.FromHours(1) ? age.TotalHours.ToString("0.##", CultureInfo.InvariantCulture) + "h"
        : age >= TimeSpan.FromMinutes(1) ? age.TotalMinutes.ToString("0.##", CultureInfo.InvariantCulture) + "m"
        : age.TotalSeconds.ToString("0.##", CultureInfo.InvariantCulture) + "s";
}
