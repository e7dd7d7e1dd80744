#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Errors that name their cause: a local I/O fault is not a connection fault. No storage server is needed: the
# destination is checked before any request (the configured endpoint, 127.0.0.1:9, has nothing listening).

BeforeAll {
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-local-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    $script:Saved = @{}
    foreach ($name in 'ETPHONEHOME_R2_ENDPOINT', 'ETPHONEHOME_R2_BUCKET', 'ETPHONEHOME_R2_ACCESS_KEY', 'ETPHONEHOME_R2_SECRET_KEY') {
        $script:Saved[$name] = [Environment]::GetEnvironmentVariable($name)
    }
    $env:ETPHONEHOME_R2_ENDPOINT = 'http://127.0.0.1:9'
    $env:ETPHONEHOME_R2_BUCKET = 'eph-test'
    $env:ETPHONEHOME_R2_ACCESS_KEY = 'test-access'
    $env:ETPHONEHOME_R2_SECRET_KEY = 'test-secret'
    Import-Module (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1') -Force
    Set-EphConfiguration -DataDirectory $script:DataDir
}

AfterAll {
    Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
    foreach ($name in $script:Saved.Keys) { [Environment]::SetEnvironmentVariable($name, $script:Saved[$name]) }
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
}

Describe 'Receive-EphExchangeFile into a directory that does not exist' {
    It 'fails at once with LocalFileError naming the local path, not as a connection error' {
        $missing = Join-Path $script:DataDir 'not-yet'
        Receive-EphExchangeFile -TransferId 'server_20260101_000000_a.bin' -Destination (Join-Path $missing 'a.bin') `
            -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LocalFileError,*'
        $err[0].CategoryInfo.Category | Should -Be 'WriteError'
        "$($err[0])" | Should -Match ([regex]::Escape($missing))
        Test-Path $missing | Should -BeFalse
    }
}
