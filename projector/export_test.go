package projector

// ModelShares lets the tests read a list as the API renders it.
var ModelShares = modelShares
