# Run by Remote.Tests.ps1 as another Unix user (no access to the data directory): an operator on a "laptop" drives
# the sandbox fleet through Connect-EphServer. Every step records what it saw in one JSON file; the It blocks assert.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [int] $Port,
    [Parameter(Mandatory)] [string] $Fingerprint,
    [Parameter(Mandatory)] [string] $User,
    [Parameter(Mandatory)] [string] $OperatorKey,
    [Parameter(Mandatory)] [string] $ReaderKey,
    [Parameter(Mandatory)] [string] $AdminKey,
    [Parameter(Mandatory)] [string] $ReaderFile,
    [Parameter(Mandatory)] [string] $DataDir,
    [Parameter(Mandatory)] [string] $Work,
    [Parameter(Mandatory)] [string] $ReaderMarker,
    [Parameter(Mandatory)] [string] $WrongPinDir,
    [Parameter(Mandatory)] [string] $ClientName,
    [Parameter(Mandatory)] [string] $S3Endpoint,
    [Parameter(Mandatory)] [string] $Out
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$r = [ordered]@{ Whoami = (& id -un) }
function Step([string] $Name, [scriptblock] $Body) {
    try { $r[$Name] = & $Body }
    catch { $r[$Name] = @{ Failed = $true; ErrorId = $_.FullyQualifiedErrorId; Category = "$($_.CategoryInfo.Category)"; Message = "$($_.Exception.Message) $($_.ErrorDetails.Message)" } }
}
function ErrorOf([scriptblock] $Body) {
    try { & $Body; @{ Failed = $false } }
    catch { @{ Failed = $true; ErrorId = $_.FullyQualifiedErrorId; Category = "$($_.CategoryInfo.Category)"; Message = "$($_.ErrorDetails.Message) $($_.Exception.Message)" } }
}

Import-Module $ModulePath
$r.DataDirReadable = ErrorOf { Get-ChildItem -LiteralPath $DataDir | Out-Null }

Step Connect {
    $c = Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $OperatorKey -HostKeyFingerprint $Fingerprint -PassThru
    @{ Operator = $c.Operator; Role = $c.Role; Connected = $c.Connected; HostKeyFingerprint = $c.HostKeyFingerprint; Type = $c.PSObject.TypeNames[0] }
}
Step Configuration { $c = Get-EphConfiguration; @{ Mode = "$($c.Mode)"; Operator = $c.Operator; Role = $c.Role; Server = $c.Server } }
Step Clients {
    $all = Get-EphClient
    @{ Names = @($all.Name | Sort-Object); Type = $all[0].PSObject.TypeNames[0]; Online = @($all | Where-Object Online).Count
       Filtered = @(Get-EphClient -Name '*-1' -Online).Count; Missing = (ErrorOf { Get-EphClient -Name 'no-such-client' -ErrorAction Stop }).ErrorId }
}
Step FanOut {
    $results = Get-EphClient | Invoke-EphCommand -Command 'echo remote-$(hostname)' -TimeoutSec 30
    @{ Count = @($results).Count; Statuses = @($results.Status | ForEach-Object { "$_" }); Output = @($results.Output); Type = $results[0].PSObject.TypeNames[0]
       Computers = @($results.PSComputerName | Sort-Object) }
}
Step Unknown { ErrorOf { Invoke-EphCommand -ClientId 'no-such-client' -Command 'true' } }
Step WhatIf {
    $marker = Join-Path ([IO.Path]::GetTempPath()) ('eph-remote-whatif-' + [guid]::NewGuid())
    $out = Get-EphClient | Invoke-EphCommand -Command "touch $marker" -WhatIf
    @{ Output = @($out).Count; Marker = $marker }
}
Step Copy {
    $source = Join-Path $Work 'upload.bin'
    $bytes = [byte[]]::new(3MB + 17); [Random]::new(7).NextBytes($bytes); [IO.File]::WriteAllBytes($source, $bytes)
    $remote = '/tmp/eph-remote-' + [guid]::NewGuid() + '.bin'
    $up = Copy-EphFile -ToClient -Path $source -Destination $remote -ClientId $ClientName
    $down = Join-Path $Work 'download.bin'
    $back = Copy-EphFile -FromClient -Path $remote -Destination $down -ClientId $ClientName
    @{ UpStatus = "$($up.Status)"; UpSha = $up.Sha256; DownStatus = "$($back.Status)"; DownSha = $back.Sha256; Remote = $remote
       LocalSha = (Get-FileHash $source -Algorithm SHA256).Hash.ToLowerInvariant(); BackSha = (Get-FileHash $down -Algorithm SHA256).Hash.ToLowerInvariant()
       Type = $up.PSObject.TypeNames[0] }
}
# The exchange from the workstation: this process has no bucket credentials; the server signs, the bytes go straight
# between this machine and the bucket (a name with a space, two parts), to an agent and back, and by curl with an upload URL.
Step Exchange {
    $source = Join-Path $Work 'exchange me.bin'
    $bytes = [byte[]]::new(17MB + 3); [Random]::new(11).NextBytes($bytes); [IO.File]::WriteAllBytes($source, $bytes)
    $localSha = (Get-FileHash $source -Algorithm SHA256).Hash.ToLowerInvariant()
    $up = Send-EphExchangeFile -Path $source -Confirm:$false
    $back = Join-Path $Work 'exchange-back.bin'
    $down = Receive-EphExchangeFile -TransferId $up.TransferId -Destination $back
    $listed = @(Get-EphExchangeFile).TransferId
    $delivered = '/tmp/eph-remote-x-' + [guid]::NewGuid() + '.bin'
    $deliver = Send-EphExchangeFile -TransferId $up.TransferId -DestinationClient $ClientName -RemotePath $delivered -Confirm:$false
    $collect = Receive-EphExchangeFile -SourceClient $ClientName -RemotePath $delivered -Destination (Join-Path $Work 'collected.bin')
    $u = New-EphExchangeUploadUrl -SourceClient $ClientName -FileName 'from curl.bin'
    & curl -sf -o /dev/null -T $source $u.UploadUrl
    $curl = $LASTEXITCODE
    $curlBack = Receive-EphExchangeFile -TransferId $u.TransferId -Destination (Join-Path $Work 'curl-back.bin') -Sha256 $localSha
    $recorded = @(Get-EphHistory -First 100 | Where-Object Actor -eq 'remote-op' | ForEach-Object { "$($_.Operation)" } | Sort-Object -Unique)
    Remove-EphExchangeFile -TransferId $u.TransferId -SourceClient $u.SourceClient -WhatIf
    $whatIfKept = @(Get-EphExchangeFile).TransferId -contains $u.TransferId
    $removed = Remove-EphExchangeFile -TransferId $u.TransferId -SourceClient $u.SourceClient -Confirm:$false
    $missing = ErrorOf { Receive-EphExchangeFile -TransferId $u.TransferId -Destination (Join-Path $Work 'gone.bin') -ErrorAction Stop }
    @{ HasCredentials = [bool]($env:ETPHONEHOME_R2_SECRET_KEY -or $env:ETPHONEHOME_R2_ACCESS_KEY); LocalSha = $localSha
       Types = @($up.PSObject.TypeNames[0], $down.PSObject.TypeNames[0]); UpSha = $up.Sha256; DownSha = $down.Sha256; Verified = $down.Verified
       BackSha = (Get-FileHash $back -Algorithm SHA256).Hash.ToLowerInvariant(); TransferId = $up.TransferId; Listed = $listed; DownloadUrl = "$($up.DownloadUrl)"
       DeliverStatus = "$($deliver.Status)"; DeliverError = $deliver.Error; Delivered = $delivered
       CollectStatus = "$($collect.Status)"; CollectError = $collect.Error; CollectVerified = $collect.Verified; CollectSha = $collect.Sha256
       Curl = $curl; CurlSha = $curlBack.Sha256; Recorded = $recorded; WhatIfKept = $whatIfKept; Deleted = $removed.Deleted; Missing = $missing.ErrorId }
}
Step Metrics {
    $m = Get-EphClientMetric -All -Summary
    @{ Count = @($m).Count; Statuses = @($m.Status | ForEach-Object { "$_" }); Type = $m[0].PSObject.TypeNames[0] }
}
Step Fleet {
    $s = Get-EphFleetStatus
    $zero = Get-EphFleetStatus -MemoryThreshold 0 -WarningVariable warned -WarningAction SilentlyContinue
    $hundred = Get-EphFleetStatus -MemoryThreshold 100 -CpuThreshold 100 -DiskThreshold 100 -TimeoutSec 30 -ThrottleLimit 4
    @{ Type = $s.PSObject.TypeNames[0]; Total = $s.Total; Warnings = @($warned).Count
       OverMemoryAtZero = @($zero.OverMemory).Count; OverMemoryAtHundred = @($hundred.OverMemory).Count }
}
Step Files {
    $dir = '/tmp/eph-remote-files-' + [guid]::NewGuid()
    $written = Get-EphClient | Set-EphFileContent -Path "$dir/hello.txt" -Value 'remote hello' -PassThru
    $read = Get-EphClient | Get-EphFileContent -Path "$dir/hello.txt"
    $listed = Get-EphChildItem -ClientId $ClientName -Path $dir
    $whatIf = Get-EphClient | Set-EphFileContent -Path "$dir/whatif.txt" -Value 'no' -PassThru -WhatIf
    $missing = ErrorOf { Get-EphFileContent -ClientId $ClientName -Path "$dir/no-such-file" -ErrorAction Stop }
    @{ Dir = $dir; Written = @($written).Count; WriteType = $written[0].PSObject.TypeNames[0]; Contents = @($read.Content); ReadType = $read[0].PSObject.TypeNames[0]
       Listed = @($listed.Name); ListType = $listed[0].PSObject.TypeNames[0]; WhatIfWritten = @($whatIf).Count; Missing = $missing }
}
Step Limits {
    $l = Get-EphRateLimitStats -ClientId $ClientName
    $missing = ErrorOf { Get-EphRateLimitStats -ClientId 'no-such-client' -ErrorAction Stop }
    @{ Count = @($l).Count; Name = $l[0].PSComputerName; Type = $l[0].PSObject.TypeNames[0]; Missing = $missing.ErrorId }
}
Step Webhooks {
    $d = @(Get-EphWebhookDelivery -First 5)
    $resend = ErrorOf { Send-EphWebhookDelivery -DeliveryId 999999 -ErrorAction Stop }
    $whatIf = @(Send-EphWebhookDelivery -DeliveryId 999999 -WhatIf -PassThru)
    @{ Count = $d.Count; Resend = $resend.ErrorId; WhatIf = $whatIf.Count }
}
Step NotAdmin { ErrorOf { Get-EphOperator } }
Step History {
    $h = Get-EphHistory -First 200
    $mine = @($h | Where-Object { $_.Actor -like '*remote-op*' })
    $page = @(Get-EphHistory -First 1 -Skip 1)
    @{ Count = @($h).Count; Mine = $mine.Count; Surfaces = @($mine.Surface | Sort-Object -Unique); Operations = @($mine.Operation | Sort-Object -Unique); Paged = $page.Count }
}
Step LocalOnly {
    @{ SetConfiguration = (ErrorOf { Set-EphConfiguration -DataDirectory $Work }); Backup = (ErrorOf { Backup-EphRegistry -Path (Join-Path $Work 'backup.db') })
       TestWebhook = (ErrorOf { Test-EphWebhook }) }
}

# Ctrl+C: a second session of this process connects (the pin is known now: no fingerprint needed), starts a long
# command, and is stopped like Ctrl+C stops a pipeline; the agent's process must be gone.
Step Stop {
    $tag = 'sleep 6' + (Get-Random -Minimum 10000 -Maximum 99999)
    $pattern = $tag.Substring(0, $tag.Length - 1) + '[' + $tag[-1] + ']'
    $ps = [powershell]::Create()
    [void]$ps.AddScript("Import-Module '$ModulePath'; Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile '$OperatorKey'; Invoke-EphCommand -ClientId $ClientName -Command '$tag' -TimeoutSec 300")
    $async = $ps.BeginInvoke()
    $running = $false
    foreach ($i in 1..60) {
        $probe = Invoke-EphCommand -ClientId $ClientName -Command "pgrep -f '$pattern'" -TimeoutSec 20
        if ($probe.ExitCode -eq 0) { $running = $true; break }
        Start-Sleep -Milliseconds 500   # waiting for a process on the agent: nothing to await from here
    }
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $ps.Stop()
    $stopSeconds = $clock.Elapsed.TotalSeconds
    $gone = $false
    foreach ($i in 1..40) {
        $probe = Invoke-EphCommand -ClientId $ClientName -Command "pgrep -f '$pattern'" -TimeoutSec 20
        if ($probe.ExitCode -ne 0) { $gone = $true; break }
        Start-Sleep -Milliseconds 500
    }
    $state = "$($ps.InvocationStateInfo.State)"
    $ps.Dispose()
    @{ Running = $running; StopSeconds = $stopSeconds; Gone = $gone; State = $state }
}

Step Disconnect { Disconnect-EphServer; @{ Mode = "$((Get-EphConfiguration).Mode)"; Current = @(Get-EphServerConnection).Count } }

# A reader: searches, but is refused commands with the role named, and nothing runs.
Step Reader {
    $c = Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $ReaderKey -PassThru
    $found = @(Get-EphClient).Count
    $refused = ErrorOf { Get-EphClient | Invoke-EphCommand -Command "touch $ReaderMarker" -ErrorAction Stop }
    $writeRefused = ErrorOf { Set-EphFileContent -ClientId $ClientName -Path $ReaderFile -Value 'no' -ErrorAction Stop }
    Disconnect-EphServer
    @{ Role = $c.Role; Found = $found; Refused = $refused; WriteRefused = $writeRefused }
}

# A reader may list the exchange but not send to it: refused with the role named, the bucket unchanged.
Step ExchangeReader {
    Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $ReaderKey | Out-Null
    $before = @(Get-EphExchangeFile).Count
    $refused = ErrorOf { Send-EphExchangeFile -Path (Join-Path $Work 'exchange me.bin') -Confirm:$false -ErrorAction Stop }
    $after = @(Get-EphExchangeFile).Count
    $initRefused = ErrorOf { Initialize-EphExchange -Confirm:$false -ErrorAction Stop }
    Disconnect-EphServer
    @{ Refused = $refused; ListedBefore = $before; Listed = $after; InitRefused = $initRefused }
}

# An admin: manages operators through the server; each change is recorded with its role and source address.
Step Admin {
    Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $AdminKey | Out-Null
    $listed = Get-EphOperator
    $tempKey = Join-Path $Work 'temp-key'
    & ssh-keygen -q -t ed25519 -N '' -C 'temp@laptop' -f $tempKey
    $added = Add-EphOperator -Name 'remote-temp' -PublicKeyPath "$tempKey.pub" -Role Reader
    $set = Set-EphOperator -Name 'remote-temp' -Role Operator
    Remove-EphOperator -Name 'remote-temp' -WhatIf
    $whatIfRemoved = @(Get-EphOperator -Name 'remote-temp' -ErrorAction SilentlyContinue).Count -eq 0
    $removed = Remove-EphOperator -Name 'remote-temp' -Confirm:$false -PassThru
    $removedListed = @(Get-EphOperator -IncludeRemoved | Where-Object Removed).Name
    $missing = ErrorOf { Set-EphOperator -Name 'no-such-operator' -Role Reader -ErrorAction Stop }
    $recorded = @(Get-EphHistory -First 50 | Where-Object { $_.Operation -in 'add_operator', 'set_operator_role', 'remove_operator' -and $_.Actor -eq 'remote-admin' })
    Disconnect-EphServer
    @{ Listed = @($listed.Name); Added = $added.Name; AddedRole = "$($added.Role)"; SetRole = "$($set.Role)"; WhatIfRemoved = $whatIfRemoved
       Removed = $removed.Removed; RemovedListed = $removedListed; Missing = $missing.ErrorId; Type = $added.PSObject.TypeNames[0]
       Recorded = $recorded.Count; Roles = @($recorded.Role | Sort-Object -Unique); Sources = @($recorded.Source | Sort-Object -Unique)
       Surfaces = @($recorded.Surface | Sort-Object -Unique) }
}

# An admin's key decisions through the server: one key back with -PassThru (re-approving an approved key changes
# nothing and warns), unknown fingerprints are KeyNotFound each and the loop goes on, -WhatIf revokes nothing.
Step Keys {
    Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $AdminKey | Out-Null
    $fp = (Get-EphClient -Name $ClientName).KeyFingerprint
    $again = Approve-EphClientKey -Fingerprint $fp -PassThru -WarningVariable warned -WarningAction SilentlyContinue
    $unknown = @(Approve-EphClientKey -Fingerprint 'SHA256:nosuch-1', 'SHA256:nosuch-2', $fp -PassThru -ErrorVariable notFound -ErrorAction SilentlyContinue -WarningAction SilentlyContinue)
    Revoke-EphClientKey -Fingerprint $fp -WhatIf
    $stillOnline = (Get-EphClient -Name $ClientName).Online
    Disconnect-EphServer
    @{ Returned = @($again.Fingerprint); Warned = $warned.Count; AfterUnknown = @($unknown.Fingerprint); NotFound = @($notFound.FullyQualifiedErrorId)
       StillOnline = $stillOnline; Expected = $fp; Type = $again.PSObject.TypeNames[0] }
}

# The server's key is not the one pinned: the connection stops, naming both fingerprints.
Step ChangedKey {
    $env:ETPHONEHOME_CONFIG_DIR = $WrongPinDir
    try { ErrorOf { Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $OperatorKey } }
    finally { Remove-Item Env:ETPHONEHOME_CONFIG_DIR }
}

# Not pinned and nobody to ask: a clear refusal, never a silent trust.
Step Unpinned {
    $env:ETPHONEHOME_CONFIG_DIR = Join-Path $Work 'empty-profile'
    try { ErrorOf { Connect-EphServer -HostName 127.0.0.1 -Port $Port -User $User -KeyFile $OperatorKey } }
    finally { Remove-Item Env:ETPHONEHOME_CONFIG_DIR }
}

$r | ConvertTo-Json -Depth 6 | Set-Content -LiteralPath $Out
