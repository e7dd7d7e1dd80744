#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Pester 5 tests of display names as a person meets them at the prompt: names are unique after normalisation
# (case, Unicode compatibility forms, invisible characters), a look-alike finds the one client, and a rename to a
# name another client has is refused with its own error ID. No agents needed.

BeforeAll {
    $script:ModuleDir = Resolve-Path (Join-Path $PSScriptRoot '../../out/EtPhoneHome')
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-names-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    $env:ETPHONEHOME_DATA_DIR = $script:DataDir
    Import-Module (Join-Path $script:ModuleDir 'EtPhoneHome.psd1') -Force
    . (Join-Path $PSScriptRoot 'SampleObjects.ps1')

    $script:WebUuid = '3f2a9c1e-8b4a-4c57-9e3d-2a7f5b9c1e40'
    $script:DbUuid = '7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f'
    Add-SeededClient -DataDirectory $script:DataDir -Clients @(
        @{ Uuid = $script:WebUuid; DisplayName = 'web-01'; Hostname = 'web-01'; Tags = @('web') }
        @{ Uuid = $script:DbUuid; DisplayName = 'db-01'; Hostname = 'db-01'; Tags = @('db') })
    # Fullwidth "ＷＥＢ-01", written with escapes so the file's encoding cannot change it.
    $script:Fullwidth = "`u{FF37}`u{FF25}`u{FF22}-01"
}

AfterAll {
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
    Remove-Item Env:ETPHONEHOME_DATA_DIR -ErrorAction SilentlyContinue
}

Describe 'Display names' {
    It 'finds the one client by a look-alike name: <_>' -ForEach @('WEB-01', "web`u{200B}-01", "`u{FF37}`u{FF25}`u{FF22}-01") {
        $found = @(Get-EphClient -Name $_)
        $found.Count | Should -Be 1
        $found[0].Uuid | Should -Be $script:WebUuid
    }

    It 'refuses a rename to a name another client has after normalisation, with ClientNameTaken naming it' {
        Set-EphClient -Id 'db-01' -DisplayName $script:Fullwidth -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable failed

        $failed.Count | Should -Be 1
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'ClientNameTaken,*'
        $failed[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $failed[0].Exception.Message | Should -BeLike "*$($script:WebUuid)*"
        (Get-EphClient -Id $script:DbUuid).DisplayName | Should -Be 'db-01'
    }

    It 'accepts a rename of a client to its own name in another case' {
        Set-EphClient -Id 'web-01' -DisplayName 'WEB-01' -Confirm:$false
        (Get-EphClient -Id $script:WebUuid).DisplayName | Should -Be 'WEB-01'
    }
}
