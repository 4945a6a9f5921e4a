package providers

// OptionsPush is the golden files' push with every option (optionsPush),
// for the wire tests of package providers_test.
var OptionsPush = optionsPush
