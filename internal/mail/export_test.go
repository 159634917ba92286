package mail

// CheckHeaders is checkHeaders, for the external tests.
var CheckHeaders = checkHeaders
