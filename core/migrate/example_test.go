package migrate_test

import (
	"fmt"
	"strings"

	"mailferry/core/migrate"
)

// A users file for MigrateUsers: with a master user, passwords may be left
// out; a local part is completed with the domain by MigrateUsers.
func ExampleReadUsersCSV() {
	users, err := migrate.ReadUsersCSV(strings.NewReader("user,password\nalice,Secret1\nbob@example.test\n# carol later\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range users {
		fmt.Printf("%s (password given: %v)\n", u.Address, u.Password != "")
	}
	// Output:
	// alice (password given: true)
	// bob@example.test (password given: false)
}
