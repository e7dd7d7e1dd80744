# Sample objects of the module's output types, for the view tests (Objects.Tests.ps1 dot-sources this file).

# A sample value of a property type, long enough to show whether a column overflows.
# Strings are what a busy fleet shows: uuids, fingerprints, names of 15 characters, a line of output.
function SampleValue([string] $name, [type] $type) {
    $inner = [Nullable]::GetUnderlyingType($type)
    if ($inner) { $type = $inner }
    if ($type -eq [string]) {
        if ($name -match 'Uuid|Id$') { return '3f2a9c1e-8b4a-4c57-9e3d-2a7f5b9c1e40' }
        if ($name -match 'Fingerprint') { return 'SHA256:' + ('Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3') }
        if ($name -match 'Url|Path$|^Destination$|Detail|Error|Stdout|Stderr|Content|Message') { return '/srv/app/releases/2026-12-06/application-bundle.tar.gz' }
        return 'web-frontend-01'
    }
    if ($type -eq [bool]) { return $true }
    if ($type -eq [DateTimeOffset]) { return [DateTimeOffset]::Now }
    if ($type -eq [DateTime]) { return [DateTime]::Now }
    if ($type -eq [TimeSpan]) { return [TimeSpan]::FromSeconds(3723.456) }
    if ($type -in [int], [long], [uint64], [uint32]) { return 1234 }
    if ($type -eq [double]) { return 87.5 }
    if ($type.IsEnum) { return [Enum]::GetValues($type) | Select-Object -Last 1 }
    if ($type.IsArray -or ($type.IsGenericType -and $type.GetGenericArguments().Count -eq 1 -and [Collections.IEnumerable].IsAssignableFrom($type))) {
        return [string[]]@('web', 'prod', 'eu-west')
    }
    return $null
}

# An object the view of $typeName selects, with every public property of the real output type filled in.
function SampleObject([string] $typeName) {
    $type = [type] $typeName
    $properties = [ordered]@{}
    foreach ($p in $type.GetProperties()) { $properties[$p.Name] = SampleValue $p.Name $p.PropertyType }
    $object = [pscustomobject] $properties
    $object.PSObject.TypeNames.Insert(0, $typeName)
    $object
}

# Writes clients straight into the registry of $DataDirectory (each with an approved key 'SHA256:seed-<uuid>'),
# through Core's seeding entry point in the module's private load context; the module must be imported.
function Add-SeededClient([string] $DataDirectory, [hashtable[]] $Clients) {
    Get-EphConfiguration | Out-Null
    $core = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'EtPhoneHome.Core' } | Select-Object -First 1
    if (-not $core) {
        # Core loads with the first registry access.
        Get-EphClient -ErrorAction SilentlyContinue | Out-Null
        $core = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'EtPhoneHome.Core' } | Select-Object -First 1
    }
    $directory = $core.GetType('EtPhoneHome.Core.DataDirectory')::new($DataDirectory)
    $registry = $core.GetType('EtPhoneHome.Core.Registry.SqliteRegistry')::Open($directory, [TimeProvider]::System)
    try {
        $seedType = $core.GetType('EtPhoneHome.Core.Registry.ClientSeed')
        $seeds = [Activator]::CreateInstance([Collections.Generic.List`1].MakeGenericType($seedType))
        foreach ($client in $Clients) {
            $seed = [Activator]::CreateInstance($seedType, $true)
            foreach ($name in $client.Keys) {
                $value = $client[$name]
                if ($name -in 'Tags', 'Capabilities') { $value = [string[]] $value }
                $seedType.GetProperty($name).SetValue($seed, $value)
            }
            $seeds.Add($seed)
        }
        $flags = [Reflection.BindingFlags] 'Instance, NonPublic, Public'
        $registry.GetType().GetMethod('SeedClients', $flags).Invoke($registry, @(, $seeds)) | Out-Null
    }
    finally {
        $registry.Dispose()
    }
}

# The completion texts TabExpansion2 offers for $line with the cursor at its end.
function Get-CompletionText([string] $line) {
    (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
}
