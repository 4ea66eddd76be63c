"""Microsoft Graph: the gateway (the one GraphServiceClient, ODataError -> our errors), raw JSON reads, bulk and
$batch reads for the sweep, client construction, subscriptions, and a span per call."""
