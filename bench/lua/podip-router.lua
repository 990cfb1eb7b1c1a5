-- Lua peer of podip-router (bench/envoy.ts), for the configuration in filters/podip-router/bench.json:
-- client-sent routing headers are stripped, the authenticator's header is taken off, a pod named
-- as /_pod/<ip>:<port>/... or <a-b-c-d>.pods.example.com is pinned when the caller is
-- authenticated and the address is in the pod range (10.8.0.0/16) on the pod port (8080), and
-- the session header never reaches the client. The benchmark substitutes POD_PREFIX and
-- POD_PORT when the pins go to its local upstream.
local POD_PREFIX, POD_PORT = "10.8.", 8080
local STRIP = { "x-envoy-original-dst-host", "x-podip-session", "x-podip-router-pin" }

local function ipv4(text)
  local a, b, c, d = string.match(text, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return a, b, c, d
end

local function target(path, authority)
  local ip, port, rest = string.match(path, "^/_pod/([%d%.]+):(%d+)(/.*)$")
  if ip then return ip, tonumber(port), rest end
  local dashed = string.match(authority, "^([%d%-]+)%.pods%.example%.com$")
  if dashed then return (string.gsub(dashed, "-", ".")), POD_PORT, nil end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  for _, name in ipairs(STRIP) do
    if headers:get(name) ~= nil then headers:remove(name) end
  end
  local who = headers:get("x-ops-authenticated")
  if who ~= nil then headers:remove("x-ops-authenticated") end
  local ip, port, rest = target(headers:get(":path") or "/", headers:get(":authority") or "")
  if ip == nil then return end
  if who == nil or who == "" then
    handle:respond({ [":status"] = "403" }, "podip-router: not allowed to pin a pod\n")
    return
  end
  if ipv4(ip) == nil or string.sub(ip, 1, #POD_PREFIX) ~= POD_PREFIX or port ~= POD_PORT then
    handle:respond({ [":status"] = "403" }, "podip-router: address is not in an allowed pod range\n")
    return
  end
  if rest then headers:replace(":path", rest) end
  headers:replace("x-podip-router-pin", "original-dst")
  headers:replace("x-envoy-original-dst-host", ip .. ":" .. port)
end

function envoy_on_response(handle)
  local headers = handle:headers()
  if headers:get("x-podip-session") ~= nil then headers:remove("x-podip-session") end
end
