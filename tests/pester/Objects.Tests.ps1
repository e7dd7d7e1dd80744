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

Describe 'Parameter names' {
    It '<_> takes a client as -ClientId or -Id alike, and pages with -First' -ForEach @(
        (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1')).CmdletsToExport) {
        $parameters = (Get-Command $_).Parameters.Values
        foreach ($p in $parameters | Where-Object Name -In 'Id', 'ClientId') {
            $other = if ($p.Name -eq 'Id') { 'ClientId' } else { 'Id' }
            $p.Aliases | Should -Contain $other -Because "-$($p.Name) of $_"
        }
        $parameters.Name | Should -Not -Contain 'Limit'
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
            ForEach-Object { @{ View = $_.Name; TypeName = $_.ViewSelectedBy.TypeName; Columns = @($_.TableControl.TableHeaders.TableColumnHeader).Count
                    Labels = @($_.TableControl.TableHeaders.TableColumnHeader | ForEach-Object { $_.Label }) } }) {
        $samples = 1..2 | ForEach-Object { SampleObject $TypeName }
        $Error.Clear()
        $text = $samples | Format-Table -View $View | Out-String -Width 80
        $lines = $text -split "`r?`n"
        $lines | Where-Object { $_.Length -gt 80 } | Should -BeNullOrEmpty
        # The header underline has one run of dashes per column shown: a column that does not fit is dropped.
        $underline = $lines | Where-Object { $_ -match '^ *-[- ]*$' } | Select-Object -First 1
        ([regex]::Matches($underline, '-+')).Count | Should -Be $Columns
        # Every header reads whole on one line: a squeezed column wraps its label into fragments.
        $header = $lines[[array]::IndexOf($lines, $underline) - 1]
        foreach ($label in $Labels) { $header | Should -Match "(^| )$([regex]::Escape($label))( |$)" -Because "the $label column of $View" }
        $Error | Should -BeNullOrEmpty
        $text | Should -Not -Match '#ERR'
    }
}

Describe 'With two clients in the registry' {
    BeforeAll {
        $script:WebUuid = '3f2a9c1e-8b4a-4c57-9e3d-2a7f5b9c1e40'
        $script:DbUuid = '7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f'
        Add-SeededClient -DataDirectory $script:DataDir -Clients @(
            @{ Uuid = $script:WebUuid; DisplayName = 'web-01'; Hostname = 'web-01'; Tags = @('web', 'prod'); Capabilities = @('docker', 'git') }
            @{ Uuid = $script:DbUuid; DisplayName = 'db-01'; Hostname = 'db-01'; Tags = @('db', 'prod'); Capabilities = @('postgres') })
    }

    Context 'Tab completion' {
        It 'completes tags from the registry on <Line>' -ForEach @(
            @{ Line = 'Get-EphClient -Tag pr' }
            @{ Line = 'Set-EphClient -Id web-01 -AddTag pr' }
            @{ Line = 'Set-EphClient -Id web-01 -RemoveTag pr' }
            @{ Line = 'Set-EphClient -Id web-01 -Tag pr' }) {
            Get-CompletionText $Line | Should -Be @('prod')
        }

        It 'completes capabilities from the registry' {
            Get-CompletionText 'Get-EphClient -Capability do' | Should -Be @('docker')
            Get-CompletionText 'Get-EphClient -Capability ' | Should -Be @('docker', 'git', 'postgres')
        }

        It 'completes client ids from a name or uuid prefix on <Line>' -ForEach @(
            @{ Line = 'Get-EphClient -Id web' }
            @{ Line = 'Get-EphFileContent /etc/hostname -ClientId web' }
            @{ Line = 'Copy-EphFile -ToClient a b -ClientId 3f2a' }
            @{ Line = 'Invoke-EphCommand uptime -ClientId web' }) {
            Get-CompletionText $Line | Should -Be @('3f2a9c1e-8b4a-4c57-9e3d-2a7f5b9c1e40')
        }

        It 'completes key fingerprints and client uuids on the key cmdlets' {
            Get-CompletionText 'Get-EphClientKey SHA256:seed-3f' | Should -Be @("SHA256:seed-$script:WebUuid")
            Get-CompletionText 'Revoke-EphClientKey -Fingerprint SHA256:seed-7' | Should -Be @("SHA256:seed-$script:DbUuid")
            Get-CompletionText 'Approve-EphClientKey -Uuid db' | Should -Be @($script:DbUuid)
        }

        It 'completes history operations and statuses' {
            Get-CompletionText 'Get-EphHistory -Operation run' | Should -Be @('run_command')
            Get-CompletionText 'Get-EphHistory -Operation exchange_d' | Should -Be @('exchange_delete', 'exchange_download')
            Get-CompletionText 'Get-EphHistory -Status Time' | Should -Be @('TimedOut')
        }
    }

    Context 'Validation' {
        It 'refuses a history operation that does not exist, naming the valid ones' {
            { Get-EphHistory -Operation run_comand } | Should -Throw -ErrorId 'InvalidHistoryQuery,*' -ExpectedMessage '*run_command*'
        }

        It 'refuses a history status that does not exist before reading the registry' {
            { Get-EphHistory -Status Sucess } | Should -Throw -ErrorId 'CannotConvertArgumentNoMessage,*' -ExpectedMessage '*Succeeded, Failed, TimedOut*'
        }

        It 'refuses a tag with <What>, as every surface does' -ForEach @(
            @{ What = 'a space'; Tag = 'eu west' }
            @{ What = 'a semicolon'; Tag = 'a;b' }
            @{ What = 'a wildcard'; Tag = 'web*' }
            @{ What = 'a control character'; Tag = "bad`ttag" }) {
            Set-EphClient -Id web-01 -AddTag $Tag -ErrorVariable err -ErrorAction SilentlyContinue | Out-Null
            $err | Should -Not -BeNullOrEmpty
            "$($err[0])" | Should -Match 'each tag must be|must not contain control'
            (Get-EphClient -Id $script:WebUuid).Tags | Should -Be @('web', 'prod')
        }
    }

    Context 'Objects' {
        It 'exports collections to CSV as their values' {
            $csv = Get-EphClient -Name web-01 | Select-Object Name, Tags, Capabilities | ConvertTo-Csv
            $row = $csv | ConvertFrom-Csv
            $row.Tags | Should -Be 'web;prod'
            $row.Capabilities | Should -Be 'docker;git'
            $file = Join-Path $script:DataDir 'clients.csv'
            Get-EphClient | Export-Csv -Path $file
            (Import-Csv $file | Where-Object Name -eq 'db-01').Tags | Should -Be 'db;prod'
        }

        It 'keeps collections usable as arrays' {
            $client = Get-EphClient -Name web-01
            $client.Tags -contains 'web' | Should -BeTrue
            $client.Tags.Count | Should -Be 2
            $client.Tags -join ', ' | Should -Be 'web, prod'
        }

        It 'records history in one vocabulary and gives its total with -IncludeTotalCount' {
            Set-EphClient -Id web-01 -Purpose 'front end' -Confirm:$false
            Set-EphClient -Id web-01 -Purpose 'front end' -Confirm:$false
            Set-EphClient -Id db-01 -Purpose 'database' -Confirm:$false
            $entries = Get-EphHistory -Operation update_client
            $entries.Status | Should -Be @('Succeeded', 'Unchanged', 'Succeeded')
            $entries[0].Status | Should -BeOfType ([EtPhoneHome.EphOperationStatus])
            Get-EphHistory -Status Unchanged | Should -HaveCount 1

            $page = Get-EphHistory -Operation update_client -First 1 -IncludeTotalCount
            $page | Should -HaveCount 2
            $page[0] | Should -BeOfType ([psobject])
            $page[0].ToString() | Should -Match '^Total count: 3'
            $page[1].Operation | Should -Be 'update_client'
        }
    }
}

Describe 'Set-EphConfiguration' {
    It 'applies to its own session (runspace) only' {
        $other = Join-Path $script:DataDir 'other'
        New-Item -ItemType Directory -Path $other -Force | Out-Null
        $ps = [powershell]::Create()   # a new runspace in this process, as ForEach-Object -Parallel and thread jobs use
        try {
            $ps.AddScript({
                param($manifest, $directory)
                Import-Module $manifest
                Set-EphConfiguration -DataDirectory $directory
                (Get-EphConfiguration).DataDirectory
            }).AddArgument($script:ManifestPath).AddArgument($other) | Out-Null
            $ps.Invoke() | Should -Be (Resolve-Path $other).Path
            $ps.HadErrors | Should -BeFalse
        }
        finally {
            $ps.Dispose()
        }

        $mine = Get-EphConfiguration
        $mine.DataDirectory | Should -Be (Resolve-Path $script:DataDir).Path
        $mine.DataDirectorySource | Should -Be 'Environment'
    }

    It 'says so in its help' {
        (Get-Help Set-EphConfiguration -Full | Out-String) | Should -Match 'runspace'
    }
}
