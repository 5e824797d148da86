module github.com/tokensync/tokensync/providers/oauth2/interop

go 1.26.8

require (
	github.com/go-oauth2/oauth2/v4 v4.5.4
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/tokensync/tokensync v0.0.0-00010101000000-000000000000
)

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
)

replace github.com/tokensync/tokensync => ../../..
