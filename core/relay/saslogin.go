package relay

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the server side of the LOGIN SASL mechanism (the obsolete
// but widespread draft-murchison-sasl-login): the client sends the user name
// and then the password, each on request. An initial response is the user
// name.
type loginServer struct {
	step     int
	user     string
	validate func(user, password string) error
}

var _ sasl.Server = (*loginServer)(nil)

var errLoginState = errors.New("sasl LOGIN: unexpected client response")

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if len(response) > 0 {
			s.user = string(response)
			s.step = 2
			return []byte("Password:"), false, nil
		}
		s.step = 1
		return []byte("Username:"), false, nil
	case 1:
		s.user = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.validate(s.user, string(response))
	}
	return nil, false, errLoginState
}
