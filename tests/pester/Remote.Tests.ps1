#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# The module from a workstation: another Unix user, with no access to the data directory, connects to the sandbox's
# sshd on 127.0.0.1 (standing in for a remote server) with its own operator keys and drives the fleet through the
# operator service. The child pwsh (RemoteOperator.ps1) records what it saw as JSON; the It blocks assert on it.
# Needs root (useradd, runuser) and OpenSSH, like every sandbox suite: tagged 'Sandbox'.

Describe 'The module connected to a server as another user' -Tag 'Sandbox' {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestSandbox.ps1')
        $script:Account = 'eph-remote-op'
        & id -u $script:Account 2>$null | Out-Null
        if ($LASTEXITCODE -ne 0) {
            & useradd -m $script:Account
            if ($LASTEXITCODE -ne 0) { throw "useradd $script:Account failed" }
        }

        # The exchange's bucket: the S3 test server (signature-checking), whose credentials only the sandbox's hub gets
        # (it inherits them from here); the remote user's process has none and goes through the server.
        $script:S3Data = Join-Path ([IO.Path]::GetTempPath()) ('eph-remote-s3-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:S3Data | Out-Null
        $s3Log = Join-Path $script:S3Data 'out.log'
        $script:S3 = Start-Process -FilePath node -PassThru -RedirectStandardOutput $s3Log -RedirectStandardError (Join-Path $script:S3Data 'err.log') -ArgumentList @(
            '--openssl-legacy-provider', (Join-Path $PSScriptRoot '../s3/s3rver.js'), '-d', (Join-Path $script:S3Data 'bucket'), '-a', '127.0.0.1', '-p', '0',
            '--silent', '--configure-bucket', 'eph-test', '--allow-mismatched-signatures')
        $s3Port = $null
        foreach ($i in 1..300) {
            if ((Test-Path $s3Log) -and ((Get-Content $s3Log -Raw) -match 'listening on 127\.0\.0\.1:(\d+)')) { $s3Port = $Matches[1]; break }
            if ($script:S3.HasExited) { break }
            Start-Sleep -Milliseconds 100
        }
        if (-not $s3Port) { throw "the S3 test server did not start: $(Get-Content (Join-Path $script:S3Data 'err.log') -Raw)" }
        $script:S3Endpoint = "http://127.0.0.1:$s3Port"
        $env:ETPHONEHOME_R2_ENDPOINT = $script:S3Endpoint
        $env:ETPHONEHOME_R2_ACCESS_KEY = 'S3RVER'
        $env:ETPHONEHOME_R2_SECRET_KEY = 'S3RVER'
        $env:ETPHONEHOME_R2_BUCKET = 'eph-test'
        try { $script:Sandbox = Start-TestSandbox -Clients 2 -Name 'remote' }
        finally { foreach ($v in 'ENDPOINT', 'ACCESS_KEY', 'SECRET_KEY', 'BUCKET') { Remove-Item "Env:ETPHONEHOME_R2_$v" -ErrorAction SilentlyContinue } }
        $dataDir = $script:Sandbox.DataDir
        Import-Module (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1') -Force
        Set-EphConfiguration -DataDirectory $dataDir
        $script:ClientName = (Get-EphClient -Online | Sort-Object Name | Select-Object -First 1).Name
        $script:ClientCount = @(Get-EphClient).Count

        # The sandbox's sshd: its port and the fingerprint of its ed25519 host key, as the server's operator would tell it.
        $config = Get-Content (Join-Path $script:Sandbox.Work 'env/sshd_config')
        $port = [int](($config | Where-Object { $_ -match '^\s*Port\s+(\d+)' } | Select-Object -First 1) -replace '^\s*Port\s+', '')
        if (-not $port) { $port = [int](($config | Where-Object { $_ -match '^\s*ListenAddress\s+\S+:(\d+)' } | Select-Object -First 1) -replace '^.*:', '') }
        $hostKey = ($config | Where-Object { $_ -match '^\s*HostKey\s+(\S+)' } | ForEach-Object { ($_ -split '\s+')[-1] } | Where-Object { $_ -match 'ed25519' } | Select-Object -First 1)
        $script:Fingerprint = ((& ssh-keygen -lf "$hostKey.pub") -split ' ')[1]

        # A world-readable copy of pwsh and of the module (the user cannot enter /root, where both live).
        $script:Shared = Join-Path ([IO.Path]::GetTempPath()) ('eph-remote-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:Shared | Out-Null
        $pwshSource = Get-ChildItem -Directory (Join-Path $HOME '.nuget/packages/powershell') | Sort-Object { [version]$_.Name } | Select-Object -Last 1
        $unix = Get-ChildItem -Directory -Recurse -Path (Join-Path $pwshSource.FullName 'tools') -Filter unix | Select-Object -First 1
        & cp -r $unix.FullName (Join-Path $script:Shared 'pwsh')
        & cp -r (Join-Path $PSScriptRoot '../../out/EtPhoneHome') (Join-Path $script:Shared 'EtPhoneHome')
        Copy-Item (Join-Path $PSScriptRoot 'RemoteOperator.ps1') $script:Shared
        & chmod -R a+rX $script:Shared

        # The user's own folder: its keys (made by it, 0600), profile, files and results; nobody else's business.
        $script:UserWork = Join-Path $script:Shared 'user'
        New-Item -ItemType Directory -Path $script:UserWork | Out-Null
        & chown "$($script:Account):" $script:UserWork
        & chmod 700 $script:UserWork
        foreach ($k in 'operator', 'reader', 'admin') {
            & runuser -u $script:Account -- ssh-keygen -q -t ed25519 -N '' -C "$k@laptop" -f (Join-Path $script:UserWork "$k-key")
            if ($LASTEXITCODE -ne 0) { throw "ssh-keygen as $script:Account failed" }
        }

        $server = Resolve-Path (Join-Path $PSScriptRoot '../../out/bin/eph-server')
        $script:Added = foreach ($k in @(@{ Name = 'remote-op'; Key = 'operator'; Role = 'operator' }, @{ Name = 'remote-reader'; Key = 'reader'; Role = 'reader' },
                @{ Name = 'remote-admin'; Key = 'admin'; Role = 'admin' })) {
            & $server operators add --data $dataDir --name $k.Name --public-key-file (Join-Path $script:UserWork "$($k.Key)-key.pub") --role $k.Role 2>&1 | Out-Null
            $LASTEXITCODE
        }

        # A profile that pins another key for the sandbox's address: the server's real key must be refused.
        $wrong = Join-Path $script:UserWork 'wrong-profile'
        New-Item -ItemType Directory -Path $wrong | Out-Null
        & ssh-keygen -q -t ed25519 -N '' -f (Join-Path $script:Shared 'impostor') | Out-Null
        $impostor = (Get-Content (Join-Path $script:Shared 'impostor.pub')) -split ' '
        $script:WrongFingerprint = ((& ssh-keygen -lf (Join-Path $script:Shared 'impostor.pub')) -split ' ')[1]
        @{ version = 1; servers = @{ "127.0.0.1:$port" = @{ key = "$($impostor[0]) $($impostor[1])"; fingerprint = $script:WrongFingerprint } } } |
            ConvertTo-Json -Depth 4 | Set-Content (Join-Path $wrong 'known-servers.json')
        & chown -R "$($script:Account):" $script:UserWork

        $script:ReaderMarker = Join-Path ([IO.Path]::GetTempPath()) ('eph-reader-marker-' + [guid]::NewGuid())
        $script:ReaderFile = Join-Path ([IO.Path]::GetTempPath()) ('eph-reader-file-' + [guid]::NewGuid())
        $out = Join-Path $script:UserWork 'result.json'
        $childArgs = @(
            '-ModulePath', (Join-Path $script:Shared 'EtPhoneHome/EtPhoneHome.psd1'), '-Port', $port, '-Fingerprint', $script:Fingerprint,
            '-User', $script:Sandbox.FleetUser, '-OperatorKey', (Join-Path $script:UserWork 'operator-key'), '-ReaderKey', (Join-Path $script:UserWork 'reader-key'),
            '-AdminKey', (Join-Path $script:UserWork 'admin-key'), '-ReaderFile', $script:ReaderFile,
            '-DataDir', $dataDir, '-Work', $script:UserWork, '-ReaderMarker', $script:ReaderMarker, '-WrongPinDir', $wrong,
            '-ClientName', $script:ClientName, '-S3Endpoint', $script:S3Endpoint, '-Out', $out)
        $dotnet = (Get-Command dotnet).Source
        $script:ChildOutput = & runuser -u $script:Account -- env "HOME=/home/$($script:Account)" "DOTNET_CLI_TELEMETRY_OPTOUT=1" `
            "ETPHONEHOME_CONFIG_DIR=$(Join-Path $script:UserWork 'profile')" $dotnet (Join-Path $script:Shared 'pwsh/pwsh.dll') `
            -NoProfile -NonInteractive -File (Join-Path $script:Shared 'RemoteOperator.ps1') @childArgs 2>&1
        $script:R = if (Test-Path $out) { Get-Content $out -Raw | ConvertFrom-Json } else { throw "the child wrote no result: $($script:ChildOutput -join "`n")" }
    }

    AfterAll {
        Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
        Stop-TestSandbox $script:Sandbox
        if ($script:S3) { Stop-Process -Id $script:S3.Id -Force -ErrorAction SilentlyContinue; $script:S3.WaitForExit(10000) | Out-Null }
        if ($script:S3Data) { Remove-Item -Recurse -Force $script:S3Data -ErrorAction SilentlyContinue }
        if ($script:R.Copy.Remote) { Remove-Item -Force $script:R.Copy.Remote -ErrorAction SilentlyContinue }
        if ($script:R.Files.Dir) { Remove-Item -Recurse -Force $script:R.Files.Dir -ErrorAction SilentlyContinue }
        if ($script:Shared) { Remove-Item -Recurse -Force $script:Shared -ErrorAction SilentlyContinue }
    }

    It 'runs as another user that cannot read the data directory' {
        $script:Added | Should -Be @(0, 0, 0)
        $script:R.Whoami | Should -Be 'eph-remote-op'
        $script:R.DataDirReadable.Failed | Should -BeTrue
    }

    It 'connects with the host key fingerprint, as the operator with its role' {
        $script:R.Connect.Failed | Should -Not -BeTrue -Because "$($script:R.Connect.Message)"
        $script:R.Connect.Operator | Should -Be 'remote-op'
        $script:R.Connect.Role | Should -Be 'operator'
        $script:R.Connect.Connected | Should -BeTrue
        $script:R.Connect.HostKeyFingerprint | Should -Be $script:Fingerprint
        $script:R.Connect.Type | Should -Be 'EtPhoneHome.EphServerConnection'
        $script:R.Configuration.Mode | Should -Be 'Remote'
        $script:R.Configuration.Role | Should -Be 'operator'
    }

    It 'searches the fleet with the same objects and filters' {
        $script:R.Clients.Names | Should -HaveCount $script:ClientCount
        $script:R.Clients.Names | Should -Contain $script:ClientName
        $script:R.Clients.Type | Should -Be 'EtPhoneHome.EphClient'
        $script:R.Clients.Online | Should -Be $script:ClientCount
        $script:R.Clients.Filtered | Should -Be 1
        $script:R.Clients.Missing | Should -BeLike 'ClientNotFound,*'
    }

    It 'fans a command out to every sandbox agent, one result each' {
        $script:R.FanOut.Count | Should -Be $script:ClientCount
        $script:R.FanOut.Statuses | Should -Be (@('Succeeded') * $script:ClientCount)
        $script:R.FanOut.Output | ForEach-Object { $_ | Should -Match '^remote-' }
        $script:R.FanOut.Type | Should -Be 'EtPhoneHome.EphCommandResult'
    }

    It 'refuses an unknown client before anything runs, and -WhatIf runs nothing' {
        $script:R.Unknown.ErrorId | Should -BeLike 'ClientNotFound,*'
        $script:R.WhatIf.Output | Should -Be 0
        Test-Path $script:R.WhatIf.Marker | Should -BeFalse
    }

    It 'copies a file up and back down, SHA-256 equal at every step' {
        $c = $script:R.Copy
        $c.UpStatus | Should -Be 'Succeeded' -Because "$($c.Message)"
        $c.DownStatus | Should -Be 'Succeeded'
        $c.UpSha | Should -Be $c.LocalSha
        $c.DownSha | Should -Be $c.LocalSha
        $c.BackSha | Should -Be $c.LocalSha
        (Get-FileHash $c.Remote -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $c.LocalSha
        $c.Type | Should -Be 'EtPhoneHome.EphFileTransfer'
    }

    It 'collects metrics and the fleet status, with the thresholds given' {
        $script:R.Metrics.Count | Should -Be $script:ClientCount
        $script:R.Metrics.Statuses | Should -Be (@('Succeeded') * $script:ClientCount)
        $script:R.Fleet.Type | Should -Be 'EtPhoneHome.EphFleetStatus'
        $script:R.Fleet.Warnings | Should -Be 0
        # Memory over 0 %: every online client; over 100 %: none. The server applied the thresholds sent.
        $script:R.Fleet.OverMemoryAtZero | Should -Be $script:ClientCount
        $script:R.Fleet.OverMemoryAtHundred | Should -Be 0
    }

    It 'writes, reads and lists files on clients, -WhatIf writing nothing' {
        $f = $script:R.Files
        $f.Failed | Should -Not -BeTrue -Because "$($f.Message)"
        $f.Written | Should -Be $script:ClientCount
        $f.WriteType | Should -Be 'EtPhoneHome.EphFileWriteResult'
        $f.Contents | Should -Be (@('remote hello') * $script:ClientCount)
        $f.ReadType | Should -Be 'EtPhoneHome.EphFileContent'
        $f.Listed | Should -Contain 'hello.txt'
        $f.ListType | Should -Be 'EtPhoneHome.EphFileEntry'
        $f.WhatIfWritten | Should -Be 0
        Test-Path (Join-Path $f.Dir 'whatif.txt') | Should -BeFalse
        (Get-Content -Raw (Join-Path $f.Dir 'hello.txt')) | Should -Be 'remote hello'
        $f.Missing.ErrorId | Should -BeLike 'FileNotFound,*'
    }

    It 'shows rate-limit counters and webhook deliveries; an unknown delivery is WebhookDeliveryNotFound' {
        $script:R.Limits.Failed | Should -Not -BeTrue -Because "$($script:R.Limits.Message)"
        $script:R.Limits.Count | Should -Be 1
        $script:R.Limits.Name | Should -Be $script:ClientName
        $script:R.Limits.Type | Should -Be 'EtPhoneHome.EphRateLimitStats'
        $script:R.Limits.Missing | Should -BeLike 'ClientNotFound,*'
        $script:R.Webhooks.Failed | Should -Not -BeTrue -Because "$($script:R.Webhooks.Message)"
        $script:R.Webhooks.Resend | Should -BeLike 'WebhookDeliveryNotFound,*'
        $script:R.Webhooks.WhatIf | Should -Be 0
    }

    It 'refuses operator management to an operator, naming the admin role' {
        $script:R.NotAdmin.ErrorId | Should -BeLike 'OperatorRoleRequired,*'
        $script:R.NotAdmin.Message | Should -Match 'admin role'
    }

    It 'decides keys through the server as an admin: one key per id with -PassThru, unknown ids named, -WhatIf changes nothing' {
        $k = $script:R.Keys
        $k.Failed | Should -Not -BeTrue -Because "$($k.Message)"
        $k.Returned | Should -Be @($k.Expected)
        $k.Warned | Should -Be 1
        $k.AfterUnknown | Should -Be @($k.Expected)
        $k.NotFound.Count | Should -Be 2
        $k.NotFound | ForEach-Object { $_ | Should -BeLike 'KeyNotFound,*' }
        $k.StillOnline | Should -BeTrue
        $k.Type | Should -Be 'EtPhoneHome.EphClientKey'
    }

    It 'lets an admin manage operators, recorded with its role and source' {
        $a = $script:R.Admin
        $a.Failed | Should -Not -BeTrue -Because "$($a.Message)"
        $a.Listed | Should -Contain 'remote-op'
        $a.Added | Should -Be 'remote-temp'
        $a.AddedRole | Should -Be 'Reader'
        $a.SetRole | Should -Be 'Operator'
        $a.WhatIfRemoved | Should -BeFalse
        $a.Removed | Should -BeTrue
        $a.RemovedListed | Should -Contain 'remote-temp'
        $a.Missing | Should -BeLike 'OperatorNotFound,*'
        $a.Recorded | Should -Be 3
        $a.Roles | Should -Be @('admin')
        $a.Sources | Should -Be @('127.0.0.1')
        $a.Surfaces | Should -Be @('pwsh+ssh')
        $a.Type | Should -Be 'EtPhoneHome.EphOperator'
    }

    It "shows the operator's own entries in the history, recorded through ssh" {
        $script:R.History.Mine | Should -BeGreaterThan 0
        $script:R.History.Surfaces | Should -Contain 'pwsh+ssh'
        $script:R.History.Operations | Should -Contain 'run_command'
        $script:R.History.Paged | Should -Be 1
    }

    It 'refuses cmdlets that have no remote operation, naming them' {
        $script:R.LocalOnly.SetConfiguration.ErrorId | Should -BeLike 'NotAvailableRemotely,*'
        $script:R.LocalOnly.SetConfiguration.Message | Should -Match 'Set-EphConfiguration'
        $script:R.LocalOnly.Backup.ErrorId | Should -BeLike 'NotAvailableRemotely,*'
        $script:R.LocalOnly.Backup.Message | Should -Match 'Backup-EphRegistry'
        $script:R.LocalOnly.TestWebhook.ErrorId | Should -BeLike 'NotAvailableRemotely,*'
    }

    It 'stops the remote command when the pipeline is stopped (Ctrl+C)' {
        $script:R.Stop.Running | Should -BeTrue
        $script:R.Stop.StopSeconds | Should -BeLessThan 15
        $script:R.Stop.Gone | Should -BeTrue
        $script:R.Stop.State | Should -Be 'Stopped'
    }

    It 'returns to local mode on Disconnect-EphServer' {
        $script:R.Disconnect.Mode | Should -Be 'Local'
        $script:R.Disconnect.Current | Should -Be 0
    }

    It 'lets a reader search but refuses it commands, naming the role, and runs nothing' {
        $script:R.Reader.Role | Should -Be 'reader'
        $script:R.Reader.Found | Should -Be $script:ClientCount
        $script:R.Reader.Refused.ErrorId | Should -BeLike 'OperatorRoleRequired,*'
        $script:R.Reader.Refused.Category | Should -Be 'PermissionDenied'
        $script:R.Reader.Refused.Message | Should -Match 'operator role'
        Test-Path $script:ReaderMarker | Should -BeFalse
    }

    It 'refuses a reader Set-EphFileContent, naming the role, and writes nothing' {
        $e = $script:R.Reader.WriteRefused
        $e.ErrorId | Should -BeLike 'OperatorRoleRequired,*'
        $e.Category | Should -Be 'PermissionDenied'
        $e.Message | Should -Match 'operator role'
        $e.Message | Should -Match 'reader'
        Test-Path $script:ReaderFile | Should -BeFalse
    }

    It 'stops at a changed server key, naming both fingerprints' {
        $e = $script:R.ChangedKey
        $e.Failed | Should -BeTrue
        $e.ErrorId | Should -BeLike 'ServerHostKeyChanged,*'
        $e.Message | Should -Match ([regex]::Escape($script:WrongFingerprint))
        $e.Message | Should -Match ([regex]::Escape($script:Fingerprint))
        $e.Message | Should -Match 'Remove-EphServerHostKey'
    }

    It 'never trusts an unpinned server silently where nobody can be asked' {
        $script:R.Unpinned.ErrorId | Should -BeLike 'ServerHostKeyNotTrusted,*'
        $script:R.Unpinned.Message | Should -Match 'HostKeyFingerprint'
    }

    It 'sends a file through the exchange from the workstation, without its credentials, and gets it back verified' {
        $x = $script:R.Exchange
        $x.Failed | Should -Not -BeTrue -Because "$($x.Message)"
        $x.HasCredentials | Should -BeFalse
        $x.Types | Should -Be @('EtPhoneHome.EphExchangeTransfer', 'EtPhoneHome.EphExchangeDownload')
        $x.UpSha | Should -Be $x.LocalSha
        $x.DownSha | Should -Be $x.LocalSha
        $x.BackSha | Should -Be $x.LocalSha
        $x.Verified | Should -BeTrue
        $x.Listed | Should -Contain $x.TransferId
        $x.DownloadUrl | Should -BeLike "$($script:S3Endpoint)/eph-test/transfers/server/*"
        $x.DownloadUrl | Should -Not -Match ' '
        $x.Curl | Should -Be 0
        $x.CurlSha | Should -Be $x.LocalSha
    }

    It 'hands a transfer to an agent and collects a file from one through the server' {
        $x = $script:R.Exchange
        $x.DeliverStatus | Should -Be 'Succeeded' -Because "$($x.DeliverError)"
        (Get-FileHash $x.Delivered -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $x.LocalSha
        $x.CollectStatus | Should -Be 'Succeeded' -Because "$($x.CollectError)"
        $x.CollectVerified | Should -BeTrue
        $x.CollectSha | Should -Be $x.LocalSha
    }

    It 'records the exchange on the server under the operator, and deletes only what it is told' {
        $x = $script:R.Exchange
        $x.Recorded | Should -Contain 'exchange_upload'
        $x.Recorded | Should -Contain 'exchange_download'
        $x.WhatIfKept | Should -BeTrue
        $x.Deleted | Should -BeTrue
        $x.Missing | Should -BeLike 'ExchangeTransferNotFound,*'
    }

    It 'refuses a reader the exchange, naming the role, and leaves the bucket as it was' {
        $x = $script:R.ExchangeReader
        $x.Refused.ErrorId | Should -BeLike 'OperatorRoleRequired,*'
        $x.Refused.Message | Should -Match 'operator'
        $x.Listed | Should -Be $x.ListedBefore
        $x.InitRefused.ErrorId | Should -BeLike 'OperatorRoleRequired,*'
        $x.InitRefused.Message | Should -Match 'admin'
    }

    It 'does the same on the server host, with the credentials there: up, back, to an agent and from it, listed, removed' {
        # The root process: the module on the data directory, the bucket's credentials in its own environment.
        $env:ETPHONEHOME_R2_ENDPOINT = $script:S3Endpoint; $env:ETPHONEHOME_R2_ACCESS_KEY = 'S3RVER'
        $env:ETPHONEHOME_R2_SECRET_KEY = 'S3RVER'; $env:ETPHONEHOME_R2_BUCKET = 'eph-test'
        try {
            $source = Join-Path $script:Shared 'local exchange.bin'
            $bytes = [byte[]]::new(5MB + 7); [Random]::new(5).NextBytes($bytes); [IO.File]::WriteAllBytes($source, $bytes)
            $sha = (Get-FileHash $source -Algorithm SHA256).Hash.ToLowerInvariant()
            $up = Send-EphExchangeFile -Path $source -Confirm:$false
            $up.Sha256 | Should -Be $sha
            $up.DownloadUrl | Should -Not -Match ' '
            $back = Join-Path $script:Shared 'local-back.bin'
            $down = Receive-EphExchangeFile -TransferId $up.TransferId -Destination $back
            $down.Verified | Should -BeTrue
            (Get-FileHash $back -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $sha

            $remotePath = '/tmp/eph-local-x-' + [guid]::NewGuid() + '.bin'
            $delivered = Send-EphExchangeFile -TransferId $up.TransferId -DestinationClient $script:ClientName -RemotePath $remotePath -Confirm:$false
            "$($delivered.Status)" | Should -Be 'Succeeded' -Because "$($delivered.Error)"
            (Get-FileHash $remotePath -Algorithm SHA256).Hash.ToLowerInvariant() | Should -Be $sha
            $collected = Receive-EphExchangeFile -SourceClient $script:ClientName -RemotePath $remotePath -Destination (Join-Path $script:Shared 'local-collected.bin')
            "$($collected.Status)" | Should -Be 'Succeeded' -Because "$($collected.Error)"
            $collected.Verified | Should -BeTrue

            $u = New-EphExchangeUploadUrl -SourceClient $script:ClientName -FileName 'x y.bin'
            $u.UploadUrl | Should -Match '%20'
            $u.SourceClient | Should -Be (Get-EphClient -Name $script:ClientName).Id
            @(Get-EphExchangeFile).TransferId | Should -Contain $up.TransferId
            Get-EphExchangeFile | Where-Object TransferId -eq $up.TransferId | Remove-EphExchangeFile -Confirm:$false | Out-Null
            @(Get-EphExchangeFile).TransferId | Should -Not -Contain $up.TransferId
            Remove-Item -Force $remotePath -ErrorAction SilentlyContinue
        }
        finally {
            foreach ($v in 'ENDPOINT', 'ACCESS_KEY', 'SECRET_KEY', 'BUCKET') { Remove-Item "Env:ETPHONEHOME_R2_$v" -ErrorAction SilentlyContinue }
        }
    }
}
