package auth

// CachedSessions is how many sessions the session-to-user and
// session-to-client maps hold.
func (s *Service) CachedSessions() (users, clients int) {
	return s.sessions.len(), s.sessionClients.len()
}
