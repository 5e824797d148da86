package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// runArgoCDLua runs script as Argo CD's Lua VM does (argo-cd
// util/lua/lua.go, runLuaWithResourceActionParameters, and oslib_safe.go):
// gopher-lua with its standard libraries only if openLibs (argocd-cm
// health checks only with resource.customizations.useOpenLibs, built-in
// scripts always, actions never); then package, base and table opened, and
// an os of only time and date, registered into the table module (so without
// open libs there is no global os) and preloaded for require("os"); a 1s
// deadline; obj the object's JSON as Lua tables; the script's return value
// decoded as Argo CD's JSON encoder (layeh.com/gopher-json) decodes it.
func runArgoCDLua(script string, obj map[string]any, openLibs bool) (any, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	safeOs := gopherLuaOsFuncs("time", "date")
	l.RegisterModule(lua.TabLibName, safeOs)
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.NewTable())
	l.SetGlobal("obj", luaValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	return goValue(l.Get(-1))
}

// gopherLuaOsFuncs returns gopher-lua's own os functions of those names:
// Argo CD's safe os library is a copy of time and date.
func gopherLuaOsFuncs(names ...string) map[string]lua.LGFunction {
	l := lua.NewState()
	defer l.Close()
	osLib := l.GetGlobal(lua.OsLibName).(*lua.LTable)
	funcs := map[string]lua.LGFunction{}
	for _, name := range names {
		funcs[name] = osLib.RawGetString(name).(*lua.LFunction).GFunction
	}
	return funcs
}

// luaValue converts a value of an object's JSON to Lua, as Argo CD's
// gopher-json does (numbers are Lua numbers).
func luaValue(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(luaValue(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetString(k, luaValue(l, item))
		}
		return t
	}
	return lua.LNil
}

// goValue converts a script's result to JSON values as gopher-json encodes
// it: a table keyed 1..n is an array, one keyed by strings an object, and an
// empty table an empty array.
func goValue(v lua.LValue) (any, error) {
	switch v := v.(type) {
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		return float64(v), nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		key, value := v.Next(lua.LNil)
		switch key.Type() {
		case lua.LTNil:
			return []any{}, nil
		case lua.LTNumber:
			var arr []any
			for want := lua.LNumber(1); key != lua.LNil; want++ {
				if key != want {
					return nil, errors.New("a table with keys that are not 1..n")
				}
				item, err := goValue(value)
				if err != nil {
					return nil, err
				}
				arr = append(arr, item)
				key, value = v.Next(key)
			}
			return arr, nil
		case lua.LTString:
			m := map[string]any{}
			for key != lua.LNil {
				if key.Type() != lua.LTString {
					return nil, errors.New("a table with both string and other keys")
				}
				item, err := goValue(value)
				if err != nil {
					return nil, err
				}
				m[string(key.(lua.LString))] = item
				key, value = v.Next(key)
			}
			return m, nil
		}
		return nil, fmt.Errorf("a table keyed by %s", key.Type())
	}
	if v == lua.LNil {
		return nil, nil
	}
	return nil, fmt.Errorf("a Lua %s", v.Type())
}
