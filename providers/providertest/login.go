package providertest

import "github.com/tokensync/tokensync/providers/providertest/fake"

// login is the Server's side of a login to one provider (fake.Login).
type login struct {
	s        *Server
	provider string
}

var _ fake.Login = login{}

func (l login) Accepts(sent map[string]string) bool {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	valid := l.s.state(l.provider).valid
	if len(valid) == 0 {
		return true
	}
	for _, set := range valid {
		matched := true
		for k, want := range set {
			if got, ok := sent[k]; !ok || got != want {
				matched = false
				break
			}
		}
		if matched {
			return true
		}
	}
	return false
}

func (l login) Issue(id string, mint func(fake.Mint) string) string {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	st := l.s.state(l.provider)
	l.s.issued++
	token := mint(fake.Mint{Seq: l.s.issued, Now: l.s.now(), Lifetime: st.lifetime, SigningKey: l.s.signKey})
	st.logins++
	st.loginsFor[id]++
	st.lastToken = token
	return token
}
