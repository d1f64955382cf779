%% Orrery's debugger runtime on the target node, loaded with the agent and removed with it.
%% Instrumented modules call probe/4 only for armed lines or while the calling process is
%% stepping. A hit pauses only that process: it waits in receive until Orrery says how to go
%% on. Every other process keeps running. Breakpoints live in persistent_term
%% {orrery_dbg_v1, Module} => #{Line => Spec}, so probes cost one read when nothing is armed.
%% Keep this file ASCII only.
-module(orrery_dbg_v1).
-export([start/1, stop/0, set_breakpoints/2, clear_module/1, probe/4, resume/2,
         paused/0, eval/2, server/1, record/2, history/2, timeline/1, recording/0]).


%% Start (or re-point) the debugger server; Listener receives {orrery_dbg, Event}.
start(Listener) ->
    case whereis(orrery_dbg_v1) of
        undefined ->
            Parent = self(),
            Pid = spawn(fun() ->
                                register(orrery_dbg_v1, self()),
                                ets:new(orrery_dbg_v1_hits, [named_table, public, set]),
                                ets:new(orrery_dbg_v1_ring, [named_table, public, ordered_set]),
                                Parent ! {orrery_dbg_v1, ready},
                                server(#{listener => Listener, paused => #{}, modules => []})
                        end),
            receive {orrery_dbg_v1, ready} -> {ok, Pid} after 5000 -> {error, timeout} end;
        Pid ->
            Pid ! {listener, Listener},
            {ok, Pid}
    end.

%% Disarm everything, resume every paused process, stop the server.
stop() ->
    case whereis(orrery_dbg_v1) of
        undefined -> ok;
        Pid ->
            Ref = monitor(process, Pid),
            Pid ! {stop, self()},
            receive {'DOWN', Ref, _, _, _} -> ok after 5000 -> exit(Pid, kill), ok end
    end,
    [persistent_term:erase(K) || {{orrery_dbg_v1, _} = K, _} <- persistent_term:get()],
    persistent_term:erase(orrery_dbg_v1_record),
    ok.

%% Breakpoints of one module: #{Line => #{cond => Bin | nil, hit => N | nil, log => Bin | nil}}.
set_breakpoints(Mod, Lines) when is_map(Lines) ->
    persistent_term:put({orrery_dbg_v1, Mod}, Lines),
    case whereis(orrery_dbg_v1) of
        undefined -> ok;
        Pid -> Pid ! {module, Mod}, ok
    end.

clear_module(Mod) ->
    persistent_term:erase({orrery_dbg_v1, Mod}),
    ok.

resume(Pid, Cmd) ->
    case whereis(orrery_dbg_v1) of
        undefined -> {error, no_debugger};
        S -> S ! {resume, Pid, Cmd}, ok
    end.

paused() ->
    case whereis(orrery_dbg_v1) of
        undefined -> [];
        S ->
            Ref = make_ref(),
            S ! {paused, self(), Ref},
            receive {Ref, L} -> L after 5000 -> [] end
    end.

%% Evaluate an Elixir expression with bindings (used for conditions, logpoints, evaluate).
eval(Expr, Binding) ->
    try
        {Value, _} = 'Elixir.Code':eval_string(Expr, Binding),
        {ok, Value}
    catch
        C:R -> {error, iolist_to_binary(io_lib:format("~p: ~p", [C, R]))}
    end.

%% ---- the probe ----------------------------------------------------------------------

probe(Mod, Line, FA, Binding) ->
    case persistent_term:get(orrery_dbg_v1_record, false) of
        false -> ok;
        Limits -> record_event(Mod, Line, FA, Binding, Limits)
    end,
    case get(orrery_step) of
        undefined -> breakpoint(Mod, Line, FA, Binding);
        Step ->
            case step_here(Step) of
                true -> pause(step, Mod, Line, FA, Binding);
                false -> breakpoint(Mod, Line, FA, Binding)
            end
    end.

step_here(in) -> true;
step_here({next, D}) -> depth() =< D;
step_here({out, D}) -> depth() < D;
step_here(_) -> false.

%% Frames below the debugger's own: the same wherever it is measured.
depth() ->
    {current_stacktrace, S} = erlang:process_info(self(), current_stacktrace),
    length([F || F <- S, element(1, F) =/= orrery_dbg_v1]).

breakpoint(Mod, Line, FA, Binding) ->
    case persistent_term:get({orrery_dbg_v1, Mod}, #{}) of
        #{Line := Spec} when is_map(Spec) ->
            case condition_holds(Spec, Binding) andalso hit_reached(Mod, Line, Spec) of
                false -> ok;
                true ->
                    case maps:get(log, Spec, nil) of
                        nil -> pause(breakpoint, Mod, Line, FA, Binding);
                        Msg -> notify({output, self(), Mod, Line, interpolate(Msg, Binding)})
                    end
            end;
        _ -> ok
    end.

condition_holds(Spec, Binding) ->
    case maps:get('cond', Spec, nil) of
        nil -> true;
        Expr ->
            case eval(Expr, Binding) of
                {ok, V} -> V =/= false andalso V =/= nil;
                {error, _} -> false
            end
    end.

hit_reached(Mod, Line, Spec) ->
    case maps:get(hit, Spec, nil) of
        nil -> true;
        N when is_integer(N) ->
            Count = try ets:update_counter(orrery_dbg_v1_hits, {Mod, Line}, 1, {{Mod, Line}, 0})
                    catch _:_ -> 0 end,
            Count >= N
    end.

%% "x is {x}" -> each {expr} evaluated with the bindings.
interpolate(Msg, Binding) ->
    Parts = re:split(Msg, "(\\{[^}]*\\})", [{return, binary}, trim]),
    iolist_to_binary(
      [case P of
           <<"{", Rest/binary>> when byte_size(Rest) > 0 ->
               Expr = binary:part(Rest, 0, byte_size(Rest) - 1),
               case eval(Expr, Binding) of
                   {ok, V} when is_binary(V) -> V;
                   {ok, V} -> 'Elixir.Kernel':inspect(V);
                   {error, E} -> [<<"<error: ">>, E, <<">">>]
               end;
           _ -> P
       end || P <- Parts]).

notify(Event) ->
    case whereis(orrery_dbg_v1) of
        undefined -> ok;
        S -> S ! {event, Event}, ok
    end.

pause(Reason, Mod, Line, FA, Binding) ->
    case whereis(orrery_dbg_v1) of
        undefined -> ok;
        S ->
            {current_stacktrace, Stack0} = erlang:process_info(self(), current_stacktrace),
            Stack = [F || F <- Stack0, element(1, F) =/= orrery_dbg_v1],
            Depth = length(Stack),
            Name = case erlang:process_info(self(), registered_name) of
                       {registered_name, N} -> N;
                       _ -> nil
                   end,
            S ! {hit, self(), #{reason => Reason, module => Mod, line => Line, function => FA,
                                bindings => orrery_agent_v1:trunc(Binding, #{depth => 10, items => 100, binary => 4096, budget => 20000}),
                                stack => Stack, name => Name, node => node()}},
            wait(Depth)
    end.

wait(Depth) ->
    receive
        {orrery_dbg_v1, resume, Cmd} ->
            case Cmd of
                continue -> erase(orrery_step);
                detach -> erase(orrery_step);
                next -> put(orrery_step, {next, Depth});
                step_in -> put(orrery_step, in);
                step_out -> put(orrery_step, {out, Depth});
                _ -> erase(orrery_step)
            end,
            ok
    end.

%% ---- recording ----------------------------------------------------------------------
%% With recording on, every probe of an instrumented module appends an event to a ring
%% buffer (ordered_set by sequence) bounded by count and memory; the oldest events drop.

record(false, _) ->
    persistent_term:erase(orrery_dbg_v1_record),
    ok;
record(true, Limits) when is_map(Limits) ->
    persistent_term:put(orrery_dbg_v1_record,
                        #{limit => maps:get(limit, Limits, 10000),
                          bytes => maps:get(bytes, Limits, 64 * 1024 * 1024)}),
    ok.

recording() ->
    case persistent_term:get(orrery_dbg_v1_record, false) of
        false -> #{on => false};
        L -> L#{on => true, size => ets:info(orrery_dbg_v1_ring, size),
                memory => ets:info(orrery_dbg_v1_ring, memory) * erlang:system_info(wordsize),
                dropped => dropped()}
    end.

dropped() ->
    case ets:lookup(orrery_dbg_v1_hits, dropped) of
        [{_, N}] -> N;
        [] -> 0
    end.

record_event(Mod, Line, FA, Binding, #{limit := Limit, bytes := Bytes}) ->
    try
        Seq = ets:update_counter(orrery_dbg_v1_hits, seq, 1, {seq, 0}),
        Small = orrery_agent_v1:trunc(Binding, #{depth => 6, items => 32, binary => 256, budget => 2000}),
        ets:insert(orrery_dbg_v1_ring, {Seq, erlang:system_time(microsecond), self(), Mod, Line, FA,
                                        depth(), Small}),
        trim(Limit, Bytes div erlang:system_info(wordsize))
    catch _:_ -> ok
    end.

trim(Limit, Words) ->
    case ets:info(orrery_dbg_v1_ring, size) > Limit
        orelse ets:info(orrery_dbg_v1_ring, memory) > Words of
        true ->
            case ets:first(orrery_dbg_v1_ring) of
                '$end_of_table' -> ok;
                K ->
                    ets:delete(orrery_dbg_v1_ring, K),
                    ets:update_counter(orrery_dbg_v1_hits, dropped, 1, {dropped, 0}),
                    trim(Limit, Words)
            end;
        false -> ok
    end.

%% Events of one process, oldest first (at most Max, the newest ones).
history(Pid, Max) ->
    Events = ets:select(orrery_dbg_v1_ring, [{{'_', '_', Pid, '_', '_', '_', '_', '_'}, [], ['$_']}]),
    N = length(Events),
    [event(E) || E <- lists:nthtail(max(0, N - Max), Events)].

%% Events filtered by #{pid => Pid} or #{module => Mod}, paged by offset/limit.
timeline(Filter) ->
    Offset = maps:get(offset, Filter, 0),
    Limit = maps:get(limit, Filter, 100),
    Pid = maps:get(pid, Filter, '_'),
    Mod = maps:get(module, Filter, '_'),
    All = ets:select(orrery_dbg_v1_ring, [{{'_', '_', Pid, Mod, '_', '_', '_', '_'}, [], ['$_']}]),
    #{total => length(All), dropped => dropped(),
      events => [event(E) || E <- lists:sublist(All, Offset + 1, Limit)]}.

event({Seq, Time, Pid, Mod, Line, FA, Depth, Binding}) ->
    #{seq => Seq, time => Time, pid => Pid, node => node(), module => Mod, line => Line,
      function => FA, depth => Depth, bindings => Binding}.

%% ---- the server ---------------------------------------------------------------------

server(State = #{listener := L, paused := P}) ->
    receive
        {listener, NewL} ->
            server(State#{listener := NewL});
        {module, _Mod} ->
            server(State);
        {hit, Pid, Info} ->
            Ref = monitor(process, Pid),
            L ! {orrery_dbg, {paused, Pid, Info}},
            server(State#{paused := P#{Pid => Ref}});
        {event, E} ->
            L ! {orrery_dbg, E},
            server(State);
        {resume, Pid, Cmd} ->
            case maps:take(Pid, P) of
                {Ref, P2} ->
                    demonitor(Ref, [flush]),
                    Pid ! {orrery_dbg_v1, resume, Cmd},
                    server(State#{paused := P2});
                error ->
                    server(State)
            end;
        {paused, From, Ref} ->
            From ! {Ref, maps:keys(P)},
            server(State);
        {'DOWN', _, process, Pid, Why} ->
            L ! {orrery_dbg, {exited, Pid, Why}},
            server(State#{paused := maps:remove(Pid, P)});
        {stop, _From} ->
            [begin demonitor(R, [flush]), Pid ! {orrery_dbg_v1, resume, detach} end
             || {Pid, R} <- maps:to_list(P)],
            catch ets:delete(orrery_dbg_v1_hits),
            ok
    end.
