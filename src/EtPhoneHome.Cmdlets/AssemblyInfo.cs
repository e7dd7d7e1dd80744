using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("EtPhoneHome.Tests.Unit")]
