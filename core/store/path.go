package store

import "strings"

// uriPath escapes a file path for the path part of the SQLite "file:" URI
// that Open hands to the driver (https://sqlite.org/uri.html): SQLite
// decodes %HH escapes there, ends the path at '?' (query) and '#'
// (fragment), so a data directory such as C:\Users\J#n\AppData\Local or
// /home/x/100%/ would otherwise open a different file. Spaces and every
// other character pass through unchanged.
func uriPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}
