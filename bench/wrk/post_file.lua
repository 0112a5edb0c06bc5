-- wrk script of `make bench-overload` (bench/overload.sh): POSTs the contents of the file named by WRK_BODY_FILE
-- (read once at start-up) as JSON; other headers come from wrk -H.
local path = os.getenv("WRK_BODY_FILE")
if path == nil or path == "" then
  error("post_file.lua: set WRK_BODY_FILE")
end
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
