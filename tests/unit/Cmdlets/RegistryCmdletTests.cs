using System.Management.Automation;
using System.Reflection;
using EtPhoneHome;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>Metadata of the registry cmdlets as PowerShell's binder sees it, and Set-EphClient's edit mapping.</summary>
public sealed class RegistryCmdletTests
{
    private static CustomAttributeData[] Data<T>(MemberInfo member) =>
        member.GetCustomAttributesData().Where(d => d.AttributeType == typeof(T)).ToArray();

    private static object? Named(CustomAttributeData d, string name) =>
        d.NamedArguments.Where(n => n.MemberName == name).Select(n => n.TypedValue.Value).FirstOrDefault();

    private static CustomAttributeData CmdletOf(Type t) => Assert.Single(Data<CmdletAttribute>(t));

    private static CustomAttributeData[] ParameterOf(Type t, string property) => Data<ParameterAttribute>(t.GetProperty(property)!);

    private static string[] AliasesOf(Type t, string property) =>
        ((IReadOnlyCollection<CustomAttributeTypedArgument>)Assert.Single(Data<AliasAttribute>(t.GetProperty(property)!)).ConstructorArguments[0].Value!)
        .Select(a => (string)a.Value!).ToArray();

    private static object?[] RangeOf(Type t, string property) =>
        Assert.Single(Data<ValidateRangeAttribute>(t.GetProperty(property)!)).ConstructorArguments.Select(a => a.Value).ToArray();

    private static Type[] OutputTypesOf(Type t) => Data<OutputTypeAttribute>(t)
        .SelectMany(d => (IReadOnlyCollection<CustomAttributeTypedArgument>)d.ConstructorArguments[0].Value!).Select(a => (Type)a.Value!).ToArray();

    [Theory]
    [InlineData(typeof(SetEphClientCommand), "Set", "EphClient", (int)ConfirmImpact.Medium)]
    [InlineData(typeof(RemoveEphClientCommand), "Remove", "EphClient", (int)ConfirmImpact.High)]
    [InlineData(typeof(ApproveEphClientKeyCommand), "Approve", "EphClientKey", (int)ConfirmImpact.Medium)]
    [InlineData(typeof(RevokeEphClientKeyCommand), "Revoke", "EphClientKey", (int)ConfirmImpact.High)]
    public void StateChangingCmdlets_SupportShouldProcess_WithTheirImpact(Type type, string verb, string noun, int impact)
    {
        var cmdlet = CmdletOf(type);
        Assert.Equal([verb, noun], cmdlet.ConstructorArguments.Select(a => a.Value));
        Assert.Equal(true, Named(cmdlet, "SupportsShouldProcess"));
        Assert.Equal(impact, Named(cmdlet, "ConfirmImpact"));
        Assert.NotNull(type.GetProperty("PassThru"));
    }

    [Theory]
    [InlineData(typeof(SetEphClientCommand), "Id", new[] { "Uuid", "ClientId" })]
    [InlineData(typeof(RemoveEphClientCommand), "Id", new[] { "Uuid", "ClientId" })]
    [InlineData(typeof(GetEphHistoryCommand), "ClientId", new[] { "Uuid", "Id" })]
    [InlineData(typeof(ApproveEphClientKeyCommand), "Uuid", new[] { "Id", "ClientId" })]
    [InlineData(typeof(RevokeEphClientKeyCommand), "Uuid", new[] { "Id", "ClientId" })]
    public void ClientParameters_BindFromThePipelineByPropertyName(Type type, string property, string[] aliases)
    {
        var parameter = Assert.Single(ParameterOf(type, property));
        Assert.Equal(true, Named(parameter, "ValueFromPipelineByPropertyName"));
        Assert.Equal(aliases, AliasesOf(type, property));
        Assert.Equal(typeof(string[]), type.GetProperty(property)!.PropertyType);
    }

    [Fact]
    public void SetEphClient_ValidatesLimitsAndAllowsClearing()
    {
        var t = typeof(SetEphClientCommand);
        Assert.Equal([1, 1000], RangeOf(t, nameof(SetEphClientCommand.RateLimitRpm)));
        Assert.Equal([1, 100], RangeOf(t, nameof(SetEphClientCommand.RateLimitConcurrent)));
        Assert.Equal([1, 100], Assert.Single(Data<ValidateLengthAttribute>(t.GetProperty("DisplayName")!)).ConstructorArguments.Select(a => a.Value));
        Assert.Equal([0, 200], Assert.Single(Data<ValidateLengthAttribute>(t.GetProperty("Purpose")!)).ConstructorArguments.Select(a => a.Value));
        Assert.Single(Data<AllowNullAttribute>(t.GetProperty("AllowedPath")!));
        Assert.Single(Data<AllowEmptyCollectionAttribute>(t.GetProperty("AllowedPath")!));
        Assert.Single(Data<AllowEmptyStringAttribute>(t.GetProperty("WebhookUrl")!));
        Assert.Single(Data<AllowEmptyCollectionAttribute>(t.GetProperty("Tag")!));
        Assert.Equal([typeof(EphClient)], OutputTypesOf(t));
    }

    [Fact]
    public void SetEphClient_OnlyBoundParametersChangeAnything()
    {
        var cmd = new SetEphClientCommand { DisplayName = "ignored", RateLimitRpm = 5, Tag = ["x"] };

        var update = cmd.BuildUpdate(["RateLimitRpm"]);

        Assert.Null(update.DisplayName);
        Assert.Null(update.Tags);
        Assert.Equal(5, update.RateLimitRpm);
        Assert.Null(update.RateLimitConcurrent);
        Assert.False(update.ClearAllowedPaths);
        Assert.Null(update.WebhookUrl);
    }

    [Fact]
    public void SetEphClient_EmptyOrNullAllowedPath_Clears_AndEmptyStringsClear()
    {
        Assert.True(new SetEphClientCommand { AllowedPath = null }.BuildUpdate(["AllowedPath"]).ClearAllowedPaths);
        Assert.True(new SetEphClientCommand { AllowedPath = [] }.BuildUpdate(["AllowedPath"]).ClearAllowedPaths);
        var set = new SetEphClientCommand { AllowedPath = ["/srv"] }.BuildUpdate(["AllowedPath"]);
        Assert.False(set.ClearAllowedPaths);
        Assert.Equal(["/srv"], set.AllowedPaths);

        var clear = new SetEphClientCommand { WebhookUrl = "", Purpose = "", Tag = [] }.BuildUpdate(["WebhookUrl", "Purpose", "Tag"]);
        Assert.Equal("", clear.WebhookUrl);
        Assert.Equal("", clear.Purpose);
        Assert.Equal([], clear.Tags!);
        Assert.Equal("clear Purpose, Tag [], use the global webhook", SetEphClientCommand.Describe(clear));
    }

    [Fact]
    public void KeyCmdlets_DefaultToFingerprint_AndOutputKeys()
    {
        foreach (var t in new[] { typeof(ApproveEphClientKeyCommand), typeof(RevokeEphClientKeyCommand) })
        {
            Assert.Equal("Fingerprint", Named(CmdletOf(t), "DefaultParameterSetName"));
            var fp = Assert.Single(ParameterOf(t, "Fingerprint"));
            Assert.Equal((true, 0, "Fingerprint"), ((bool)Named(fp, "Mandatory")!, (int)Named(fp, "Position")!, (string)Named(fp, "ParameterSetName")!));
            Assert.Equal([typeof(EphClientKey)], OutputTypesOf(t));
        }

        var get = typeof(GetEphClientKeyCommand);
        Assert.Equal(["KeyFingerprint"], AliasesOf(get, "Fingerprint"));
        Assert.Equal(typeof(SwitchParameter), get.GetProperty("Pending")!.PropertyType);
        Assert.Equal([typeof(EphClientKey)], OutputTypesOf(get));
    }

    [Fact]
    public void GetEphHistory_SupportsPaging_AndTypedTimes()
    {
        var t = typeof(GetEphHistoryCommand);
        Assert.Equal(true, Named(CmdletOf(t), "SupportsPaging"));
        Assert.Equal(typeof(DateTime), t.GetProperty("Since")!.PropertyType);
        Assert.Equal(typeof(DateTime), t.GetProperty("Until")!.PropertyType);
        Assert.Equal([typeof(EphHistoryEntry)], OutputTypesOf(t));
        Assert.Equal(DateTimeKind.Utc, GetEphHistoryCommand.ToUtc(new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc)).UtcDateTime.Kind);
        Assert.Equal(TimeSpan.Zero, GetEphHistoryCommand.ToUtc(new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Local)).Offset);
    }

    [Fact]
    public void GetEphClient_HasTheSearchFilters()
    {
        var t = typeof(GetEphClientCommand);
        foreach (var (name, type) in new[] { ("Query", typeof(string)), ("Purpose", typeof(string)), ("Tag", typeof(string[])), ("Capability", typeof(string[])) })
        {
            Assert.Equal(type, t.GetProperty(name)!.PropertyType);
            var p = Assert.Single(ParameterOf(t, name));
            Assert.Null(Named(p, "ParameterSetName")); // all sets
        }
    }

    [Fact]
    public void NewOutputTypes_AreImmutable_WithoutSecrets_AndHaveViews()
    {
        foreach (var type in new[] { typeof(EphClientKey), typeof(EphHistoryEntry), typeof(EphClient) })
        {
            Assert.True(type.IsSealed);
            Assert.All(type.GetProperties(), p => Assert.Null(p.SetMethod));
            Assert.DoesNotContain(type.GetProperties(), p => p.Name.Contains("Secret", StringComparison.OrdinalIgnoreCase) || p.Name == "PublicKey");
        }

        foreach (var name in new[] { "Fingerprint", "Status", "ClaimedHostname", "ClaimedPlatform", "Uuid", "FirstSeen", "LastSeen", "IsMismatch" })
        {
            Assert.NotNull(typeof(EphClientKey).GetProperty(name));
        }

        foreach (var name in new[] { "At", "Client", "ClientId", "Operation", "Status", "Actor", "Surface", "Duration", "Detail" })
        {
            Assert.NotNull(typeof(EphHistoryEntry).GetProperty(name));
        }

        foreach (var name in new[] { "AllowedPaths", "WebhookUrl", "RateLimitRpm", "RateLimitConcurrent", "ConnectionCount", "Username", "RemovedAt" })
        {
            Assert.NotNull(typeof(EphClient).GetProperty(name));
        }

        Assert.Equal(Enum.GetNames<EtPhoneHome.Core.Registry.KeyStatus>(), Enum.GetNames<EphKeyStatus>());

        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(root.FullName, "EtPhoneHome.sln")))
        {
            root = root.Parent!;
        }

        var viewed = System.Xml.Linq.XDocument.Load(Path.Combine(root.FullName, "module", "EtPhoneHome.format.ps1xml"))
            .Descendants("TypeName").Select(e => e.Value).ToHashSet();
        Assert.Contains(typeof(EphClientKey).FullName!, viewed);
        Assert.Contains(typeof(EphHistoryEntry).FullName!, viewed);
    }

    [Fact]
    public void ErrorIds_AreStable()
    {
        Assert.Equal(("InvalidClientField", "KeyNotFound", "InvalidHistoryQuery"), (Strings.InvalidClientFieldId, Strings.KeyNotFoundId, Strings.InvalidHistoryQueryId));
    }
}
