package readmodel

import (
	"path"
	"slices"
	"strings"
	"testing"
)

// hashTag is the part of key that Redis Cluster hashes: the text between
// the first '{' and the first '}' after it, if that is not empty, else the
// whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestKeysShareHashTags(t *testing.T) {
	t.Parallel()
	const gen, keyID = "gabc123", "key_1"
	render := renderKeysOf(gen, renderA)
	tests := []struct {
		name string
		keys []string
		tag  string
	}{
		{"every key of one render", render.slice(), renderA},
		{"every key of one render's scratch copy", renderKeysOf(scratchGen(gen), renderA).slice(), renderA},
		{"every key of one project", projectKeys(gen, projectA), "p:" + projectA},
		{"the key index and a key's record", append(keyKeys(gen, keyID), byHashKey(gen)), "keys"},
		{"the control keys", []string{ctlKey(), partLeaseKey(0), partLeaseKey(7), membersKey()}, "meta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range tt.keys {
				if got := hashTag(k); got != tt.tag {
					t.Errorf("hash tag of %s = %q, want %q", k, got, tt.tag)
				}
				if !strings.HasPrefix(k, prefix) {
					t.Errorf("%s does not start with %q", k, prefix)
				}
			}
		})
	}

	t.Run("the render keys are distinct and in the scripts' order", func(t *testing.T) {
		names := []string{"render", "shares", "recs", "clicks", "revoked", "dedupe", "pending", "seen"}
		for i, k := range render.slice() {
			if !strings.HasSuffix(k, ":"+names[i]) {
				t.Errorf("KEYS[%d] = %s, want …:%s", i+1, k, names[i])
			}
		}
		uniq := slices.Compact(slices.Sorted(slices.Values(render.slice())))
		if len(uniq) != len(render) {
			t.Errorf("render keys %v are not distinct", render)
		}
	})
	t.Run("the index the API reads is the one the key script writes", func(t *testing.T) {
		if got, want := keyKeys(gen, keyID)[0], byHashKey(gen); got != want {
			t.Errorf("keyKeys()[0] = %s, byHashKey() = %s, want the same key", got, want)
		}
	})
	t.Run("the project hash the API reads is the one the project script writes", func(t *testing.T) {
		if got, want := projectKeys(gen, projectA)[0], projectKey(gen, projectA); got != want {
			t.Errorf("projectKeys()[0] = %s, projectKey() = %s, want the same key", got, want)
		}
	})
}

// TestGenPattern checks that a generation's SCAN pattern matches its keys
// and no key of any other generation, even one whose name extends it.
func TestGenPattern(t *testing.T) {
	t.Parallel()
	keysOf := func(gen string) []string {
		k := append(renderKeysOf(gen, renderA).slice(), projectKeys(gen, projectA)...)
		return append(k, keyKeys(gen, "key_1")...)
	}
	tests := []struct {
		name, gen, other string
	}{
		{"another generation", "gabc", "gxyz"},
		{"a generation whose name extends it", "gabc", "gabc1"},
		{"its own scratch generation", "gabc", scratchGen("gabc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pattern := genPattern(tt.gen)
			for _, k := range keysOf(tt.gen) {
				if ok, _ := path.Match(pattern, k); !ok {
					t.Errorf("%s does not match its generation's pattern %s", k, pattern)
				}
			}
			for _, k := range keysOf(tt.other) {
				if ok, _ := path.Match(pattern, k); ok {
					t.Errorf("%s of generation %s matches %s", k, tt.other, pattern)
				}
			}
			for _, k := range []string{ctlKey(), partLeaseKey(3), membersKey(), appliedChannel()} {
				if ok, _ := path.Match(pattern, k); ok {
					t.Errorf("control key %s matches %s", k, pattern)
				}
			}
		})
	}
}

func TestValidGen(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		gen  string
		want bool
	}{
		{NewGen(epoch), true},
		{scratchGen(NewGen(epoch)), true},
		{"", false},
		{"*", false},
		{"g:1", false},
		{"g{1}", false},
		{"g?", false},
		{"g[1]", false},
		{"g 1", false},
		{strings.Repeat("g", 33), false},
	} {
		if got := validGen(tt.gen); got != tt.want {
			t.Errorf("validGen(%q) = %v, want %v", tt.gen, got, tt.want)
		}
	}
}
