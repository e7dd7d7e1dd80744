#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Pester 5 tests of how the module's objects, views, help and completion behave for a person at the prompt:
# views that parse and fit an 80-column terminal, collections that export to CSV as values, help online, tab
# completion from a registry with two clients, and settings that stay in their own runspace. No agents needed.

BeforeAll {
    $script:ModuleDir = Resolve-Path (Join-Path $PSScriptRoot '../../out/EtPhoneHome')
    $script:ManifestPath = Join-Path $script:ModuleDir 'EtPhoneHome.psd1'
    $script:Manifest = Import-PowerShellDataFile $script:ManifestPath
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-objects-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    $env:ETPHONEHOME_DATA_DIR = $script:DataDir
    Import-Module $script:ManifestPath -Force

    . (Join-Path $PSScriptRoot 'SampleObjects.ps1')

    [xml] $script:Formats = Get-Content -Raw (Join-Path $script:ModuleDir 'EtPhoneHome.format.ps1xml')
    $script:TableViews = @($script:Formats.Configuration.ViewDefinitions.View | Where-Object { $_.TableControl } |
        ForEach-Object { @{ View = $_.Name; TypeName = $_.ViewSelectedBy.TypeName; Columns = @($_.TableControl.TableHeaders.TableColumnHeader).Count } })
}

AfterAll {
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
    Remove-Item Env:ETPHONEHOME_DATA_DIR -ErrorAction SilentlyContinue
}

Describe 'Help online' {
    It '<_> has a HelpUri to its page under docs/help, the page the help names as its online version' -ForEach @(
        (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1')).CmdletsToExport) {
        $expected = $script:Manifest.PrivateData.PSData.ProjectUri + "/blob/main/docs/help/$_.md"
        (Get-Command $_).HelpUri | Should -Be $expected
        $page = Join-Path $PSScriptRoot "../../docs/help/$_.md"
        $page | Should -Exist
        (Get-Content $page -TotalCount 6) -match '^online version: (.*)$' | Should -Be "online version: $expected"
    }

    It 'names in its release notes only cmdlets the module has, and every area it has' {
        $notes = $script:Manifest.PrivateData.PSData.ReleaseNotes
        $exported = $script:Manifest.CmdletsToExport
        foreach ($name in [regex]::Matches($notes, '\b[A-Z][a-z]+-Eph[A-Za-z]+').Value) { $exported | Should -Contain $name }
        foreach ($cmdlet in $exported) {
            $noun = $cmdlet.Split('-')[1]
            $notes | Should -Match $noun
        }
    }
}

Describe 'Views' {
    It 'loads its format file without error' {
        $errors = $null
        Update-FormatData -PrependPath (Join-Path $script:ModuleDir 'EtPhoneHome.format.ps1xml') -ErrorVariable errors -ErrorAction SilentlyContinue
        $errors | Should -BeNullOrEmpty
    }

    It 'parses every script block of every view' {
        foreach ($block in $script:Formats.SelectNodes('//ScriptBlock')) {
            $tokens = $null; $parseErrors = $null
            [System.Management.Automation.Language.Parser]::ParseInput($block.InnerText, [ref] $tokens, [ref] $parseErrors) | Out-Null
            $parseErrors | Should -BeNullOrEmpty -Because $block.InnerText
            # A script block that fails at run time shows an empty cell; the sample objects below catch those.
        }
    }

    It 'renders the <View> table in 80 columns with all <Columns> columns and no error' -ForEach @(
        [xml] $formats = Get-Content -Raw (Join-Path $PSScriptRoot '../../module/EtPhoneHome.format.ps1xml')
        $formats.Configuration.ViewDefinitions.View | Where-Object { $_.TableControl } |
            ForEach-Object { @{ View = $_.Name; TypeName = $_.ViewSelectedBy.TypeName; Columns = @($_.TableControl.TableHeaders.TableColumnHeader).Count } }) {
        $samples = 1..2 | ForEach-Object { SampleObject $TypeName }
        $Error.Clear()
        $text = $samples | Format-Table -View $View | Out-String -Width 80
        $lines = $text -split "`r?`n"
        $lines | Where-Object { $_.Length -gt 80 } | Should -BeNullOrEmpty
        # The header underline has one run of dashes per column shown: a column that does not fit is dropped.
        $underline = $lines | Where-Object { $_ -match '^ *-[- ]*$' } | Select-Object -First 1
        ([regex]::Matches($underline, '-+')).Count | Should -Be $Columns
        $Error | Should -BeNullOrEmpty
        $text | Should -Not -Match '#ERR'
    }
}
