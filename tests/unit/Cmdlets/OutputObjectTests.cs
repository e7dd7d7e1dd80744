using EtPhoneHome.Core.Operations;
using Xunit;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>Output objects as PowerShell users read them: lines of output, collections that print as their values.</summary>
public sealed class OutputObjectTests
{
    [Theory]
    [InlineData("", new string[0])]
    [InlineData("one", new[] { "one" })]
    [InlineData("one\n", new[] { "one" })]
    [InlineData("one\r\ntwo\r\n", new[] { "one", "two" })]
    [InlineData("one\n\nthree", new[] { "one", "", "three" })]
    public void ACommandResult_GivesItsOutputLineByLine(string stdout, string[] lines)
    {
        var result = new EphCommandResult(new FleetCommandResult { Uuid = "u", DisplayName = "web-01", Status = CommandStatus.Succeeded, Stdout = stdout });
        Assert.Equal(lines, result.Output);
        Assert.Equal(stdout, result.Stdout);
    }

    [Fact]
    public void ACollectionProperty_PrintsAsItsValues_ForCsv()
    {
        Assert.Equal("web;prod", EphList.Of(["web", "prod"]).ToString());
        Assert.Equal("", EphList.Of(Array.Empty<string>()).ToString());
        var map = new EphMap([new("sha256", "ab12"), new("dest_client", "db-01")]);
        Assert.Equal("dest_client=db-01;sha256=ab12", map.ToString());
        Assert.Equal("ab12", map["SHA256"]);
    }

    [Fact]
    public void EveryCollectionPropertyOfEveryOutputType_IsAnEphList()
    {
        var outputs = typeof(EphClient).Assembly.GetExportedTypes().Where(t => t.Name.StartsWith("Eph", StringComparison.Ordinal) && t.IsClass && !t.IsAbstract && !t.IsGenericType && !typeof(System.Management.Automation.Cmdlet).IsAssignableFrom(t) && !typeof(System.Collections.IEnumerable).IsAssignableFrom(t));
        foreach (var property in outputs.SelectMany(t => t.GetProperties()))
        {
            var type = property.PropertyType;
            if (type != typeof(string) && typeof(System.Collections.IEnumerable).IsAssignableFrom(type))
            {
                Assert.True(type == typeof(EphMap) || (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(EphList<>)), $"{property.DeclaringType!.Name}.{property.Name} is {type.Name}");
            }
        }
    }
}
