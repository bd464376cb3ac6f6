// Package randomprov is the lab stand-in for the pulumi-random 4.21.2 plugin (a bridge of
// terraform-provider-random): RandomString, RandomPassword and RandomBytes. Every input change
// replaces the resource; randomness comes from crypto/rand.
package randomprov

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/bcrypt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

// Version is the plugin version this stand-in answers to.
const Version = "4.21.2"

const (
	numChars       = "0123456789"
	lowerChars     = "abcdefghijklmnopqrstuvwxyz"
	upperChars     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	defaultSpecial = "!@#$%&*()-_=+[]{}<>:?"
)

// Resources returns the random resources.
func Resources() []*fw.Resource {
	return []*fw.Resource{RandomString(), RandomPassword(), RandomBytes()}
}

func stringProps(password bool) []fw.Prop {
	props := []fw.Prop{
		{Name: "length", Type: "integer", In: true, Required: true, Replace: true},
		{Name: "keepers", Type: "object", In: true, Replace: true},
		{Name: "lower", Type: "boolean", In: true, Replace: true, Default: true},
		{Name: "upper", Type: "boolean", In: true, Replace: true, Default: true},
		{Name: "numeric", Type: "boolean", In: true, Replace: true},
		{Name: "number", Type: "boolean", In: true, Replace: true},
		{Name: "special", Type: "boolean", In: true, Replace: true, Default: true},
		{Name: "overrideSpecial", Type: "string", In: true, Replace: true},
		{Name: "minLower", Type: "integer", In: true, Replace: true, Default: 0},
		{Name: "minUpper", Type: "integer", In: true, Replace: true, Default: 0},
		{Name: "minNumeric", Type: "integer", In: true, Replace: true, Default: 0},
		{Name: "minSpecial", Type: "integer", In: true, Replace: true, Default: 0},
		{Name: "result", Type: "string", Secret: password},
	}
	if password {
		props = append(props, fw.Prop{Name: "bcryptHash", Type: "string", Secret: true})
	}
	return props
}

func validateString(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
	var f []*pulumirpc.CheckFailure
	sum, allKnown := 0, true
	for _, k := range []string{"minLower", "minUpper", "minNumeric", "minSpecial"} {
		if !fw.Known(news, k) {
			allKnown = false
			continue
		}
		n := fw.Int(news, k, 0)
		if n < 0 {
			f = append(f, &pulumirpc.CheckFailure{Property: k, Reason: k + " must be at least 0"})
		}
		sum += n
	}
	if fw.Known(news, "length") {
		n := fw.Int(news, "length", 0)
		if n < 1 {
			f = append(f, &pulumirpc.CheckFailure{Property: "length", Reason: "length must be at least 1"})
		} else if allKnown && n < sum {
			f = append(f, &pulumirpc.CheckFailure{Property: "length", Reason: fmt.Sprintf(
				"length (%d) must be >= minUpper + minLower + minNumeric + minSpecial (%d)", n, sum)})
		}
	}
	return f
}

// numeric and its deprecated alias number always end up equal (default true).
func checkNumeric(_ *fw.Ctx, news resource.PropertyMap) (resource.PropertyMap, error) {
	numeric, hasNumeric := fw.Get(news, "numeric")
	number, hasNumber := fw.Get(news, "number")
	switch {
	case hasNumeric && !hasNumber:
		news["number"] = numeric
	case hasNumber && !hasNumeric:
		news["numeric"] = number
	case !hasNumeric && !hasNumber:
		news["numeric"] = resource.NewBoolProperty(true)
		news["number"] = resource.NewBoolProperty(true)
	}
	return news, nil
}

// StringOptions are the inputs of RandomString/RandomPassword.
type StringOptions struct {
	Length                                     int
	Lower, Upper, Numeric, Special             bool
	OverrideSpecial                            *string
	MinLower, MinUpper, MinNumeric, MinSpecial int
}

func optionsFrom(m resource.PropertyMap) StringOptions {
	return StringOptions{
		Length:          fw.Int(m, "length", 0),
		Lower:           fw.Bool(m, "lower", true),
		Upper:           fw.Bool(m, "upper", true),
		Numeric:         fw.Bool(m, "numeric", fw.Bool(m, "number", true)),
		Special:         fw.Bool(m, "special", true),
		OverrideSpecial: fw.StrPtr(m, "overrideSpecial"),
		MinLower:        fw.Int(m, "minLower", 0),
		MinUpper:        fw.Int(m, "minUpper", 0),
		MinNumeric:      fw.Int(m, "minNumeric", 0),
		MinSpecial:      fw.Int(m, "minSpecial", 0),
	}
}

// GenerateString follows terraform-provider-random: the minimum counts of each class first (even
// for a class that is otherwise disabled, as upstream), the rest from the enabled classes, then a
// cryptographically random shuffle.
func GenerateString(o StringOptions) (string, error) {
	special := defaultSpecial
	if o.OverrideSpecial != nil {
		special = *o.OverrideSpecial
	}
	chars := ""
	if o.Upper {
		chars += upperChars
	}
	if o.Lower {
		chars += lowerChars
	}
	if o.Numeric {
		chars += numChars
	}
	if o.Special {
		chars += special
	}
	rest := o.Length - o.MinLower - o.MinUpper - o.MinNumeric - o.MinSpecial
	if rest < 0 {
		return "", fmt.Errorf("length (%d) must be >= the sum of the minimum counts", o.Length)
	}
	var out []byte
	for _, part := range []struct {
		set string
		n   int
	}{{numChars, o.MinNumeric}, {lowerChars, o.MinLower}, {upperChars, o.MinUpper}, {special, o.MinSpecial}, {chars, rest}} {
		b, err := pick(part.set, part.n)
		if err != nil {
			return "", err
		}
		out = append(out, b...)
	}
	for i := len(out) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}

func pick(set string, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if set == "" {
		return nil, errors.New("the character set is empty: enable at least one of lower, upper, numeric, special")
	}
	out := make([]byte, n)
	max := big.NewInt(int64(len(set)))
	for i := range out {
		idx, err := rand.Int(rand.Reader, max)
		if err != nil {
			return nil, err
		}
		out[i] = set[idx.Int64()]
	}
	return out, nil
}

// RandomString is random:index/randomString:RandomString (ID = result, result not secret).
func RandomString() *fw.Resource {
	return &fw.Resource{
		Token: "random:index/randomString:RandomString", Desc: "A random string.",
		Props: stringProps(false), Validate: validateString, CheckHook: checkNumeric,
		Create: func(_ *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			s, err := GenerateString(optionsFrom(news))
			if err != nil {
				return "", nil, err
			}
			outs := fw.Copy(news)
			outs["result"] = resource.NewStringProperty(s)
			return s, outs, nil
		},
	}
}

// RandomPassword is random:index/randomPassword:RandomPassword (ID "none", result and bcryptHash secret).
func RandomPassword() *fw.Resource {
	return &fw.Resource{
		Token: "random:index/randomPassword:RandomPassword", Desc: "A random password (secret).",
		Props: stringProps(true), Validate: validateString, CheckHook: checkNumeric,
		Create: func(_ *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			s, err := GenerateString(optionsFrom(news))
			if err != nil {
				return "", nil, err
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.DefaultCost)
			if err != nil {
				return "", nil, fmt.Errorf("failed to generate bcrypt hash of the password: %w", err)
			}
			outs := fw.Copy(news)
			outs["result"] = resource.NewStringProperty(s)
			outs["bcryptHash"] = resource.NewStringProperty(string(hash))
			return "none", outs, nil
		},
	}
}

// RandomBytes is random:index/randomBytes:RandomBytes (ID "none", base64 and hex secret).
func RandomBytes() *fw.Resource {
	return &fw.Resource{
		Token: "random:index/randomBytes:RandomBytes", Desc: "Random bytes (secret).",
		Props: []fw.Prop{
			{Name: "length", Type: "integer", In: true, Required: true, Replace: true},
			{Name: "keepers", Type: "object", In: true, Replace: true},
			{Name: "base64", Type: "string", Secret: true},
			{Name: "hex", Type: "string", Secret: true},
		},
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			if fw.Known(news, "length") && fw.Int(news, "length", 0) < 1 {
				return []*pulumirpc.CheckFailure{{Property: "length", Reason: "length must be at least 1"}}
			}
			return nil
		},
		Create: func(_ *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			b := make([]byte, fw.Int(news, "length", 0))
			if _, err := rand.Read(b); err != nil {
				return "", nil, err
			}
			outs := fw.Copy(news)
			outs["base64"] = resource.NewStringProperty(base64.StdEncoding.EncodeToString(b))
			outs["hex"] = resource.NewStringProperty(hex.EncodeToString(b))
			return "none", outs, nil
		},
	}
}
