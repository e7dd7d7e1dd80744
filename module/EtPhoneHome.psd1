@{
  RootModule           = 'EtPhoneHome.Cmdlets.dll'
  # Stamped from the build's single version (EphVersion in Directory.Build.props).
  ModuleVersion        = '0.1.0'
  GUID                 = '6f0c2d1e-8b4a-4c57-9e3d-2a7f5b9c1e40'
  Author               = 'EtPhoneHome contributors'
  CompanyName          = 'EtPhoneHome'
  Copyright            = 'Copyright (c) EtPhoneHome contributors'
  Description          = 'Operate a fleet of EtPhoneHome clients: find them, run commands and move files on many at once through their SSH reverse tunnels.'
  PowerShellVersion    = '7.4'
  CompatiblePSEditions = @('Core')
  FormatsToProcess     = @('EtPhoneHome.format.ps1xml')
  CmdletsToExport      = @('Get-EphClient', 'Invoke-EphCommand', 'Get-EphConfiguration', 'Set-EphConfiguration', 'Get-EphClientMetric', 'Get-EphFleetStatus', 'Send-EphExchangeFile', 'Receive-EphExchangeFile', 'Get-EphExchangeFile', 'Remove-EphExchangeFile', 'New-EphExchangeUploadUrl', 'Initialize-EphExchange', 'Get-EphWebhookDelivery', 'Send-EphWebhookDelivery', 'Test-EphWebhook', 'Get-EphRateLimitStats', 'Set-EphClient', 'Remove-EphClient', 'Get-EphClientKey', 'Approve-EphClientKey', 'Revoke-EphClientKey', 'Get-EphHistory', 'Start-EphMcpServer', 'Get-EphFileContent', 'Set-EphFileContent', 'Get-EphChildItem', 'Copy-EphFile', 'Backup-EphRegistry', 'Restore-EphRegistry', 'Remove-EphClientKey', 'Add-EphOperator', 'Get-EphOperator', 'Set-EphOperator', 'Remove-EphOperator')
  FunctionsToExport    = @()
  AliasesToExport      = @()
  VariablesToExport    = @()
  PrivateData          = @{
    PSData = @{
      Tags         = @('fleet', 'ssh', 'remote', 'tunnel', 'reverse-tunnel', 'nat', 'remote-execution', 'Linux', 'Windows', 'macOS')
      ProjectUri   = 'https://github.com/etphonehome/etphonehome'
      LicenseUri   = 'https://github.com/etphonehome/etphonehome/blob/main/LICENSE'
      ReleaseNotes = '0.1.0, the first release. 34 cmdlets:
- Clients: Get-EphClient (names with wildcards, tags, capabilities, text search, -Online), Set-EphClient, Remove-EphClient.
- Keys: Get-EphClientKey (-Pending), Approve-EphClientKey, Revoke-EphClientKey, Remove-EphClientKey -Pending (purges pending keys unseen for longer than -OlderThan, 7 days by default).
- Operators (SSH keys with a role: Reader, Operator, Admin): Add-EphOperator, Get-EphOperator, Set-EphOperator, Remove-EphOperator.
- Commands: Invoke-EphCommand fans a command out over the fleet (throttle, timeout, error limit), one result per client.
- Files through the tunnels: Get-EphFileContent, Set-EphFileContent, Get-EphChildItem, Copy-EphFile (SHA-256 verified, resumable).
- Exchange through R2 for large files and offline clients: Send-, Receive-, Get-, Remove-EphExchangeFile, New-EphExchangeUploadUrl, Initialize-EphExchange.
- Health: Get-EphClientMetric, Get-EphFleetStatus. Rate limits: Get-EphRateLimitStats.
- Webhooks: Get-EphWebhookDelivery, Send-EphWebhookDelivery, Test-EphWebhook. History: Get-EphHistory (-First, -Skip, -IncludeTotalCount).
- Settings: Get-EphConfiguration, Set-EphConfiguration (per session). AI agents: Start-EphMcpServer.
- Registry: Backup-EphRegistry (online, checked), Restore-EphRegistry (refused while a hub runs; the replaced file is kept).
Tab completion of client names, ids, tags, capabilities, key fingerprints and history operations and statuses; table views that fit 80 columns; help online (Get-Help -Online).
Dependencies load in a private AssemblyLoadContext, beside AWS.Tools, Posh-SSH and other modules.'
    }
  }
}
